"""`recsys-eval import-trec --qrels Q --run R --output DIR`: TREC qrels and a run as exposures and
outcomes in the contracts (see recsys_eval.trec_import), plus a dataset and an eval YAML that
evaluate them as trec_eval does."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from recsys_eval.errors import EXIT_OK, ConfigError
from recsys_eval.trec_import import import_trec

DEFAULT_KS = [10]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import-trec",
        help="turn TREC qrels and a run file into exposures and outcomes",
        description="Write exposures.jsonl (one ranked list per run query, ordered as trec_eval "
        "orders it: score descending, then docno descending) and outcomes.jsonl (one click per "
        "qrels line, value = the relevance grade) into DIR, with dataset.yaml and eval.yaml "
        "(offline, dialect trec, grade: value) to run them. Nothing is written when a line is "
        "malformed.",
    )
    parser.add_argument(
        "--qrels", required=True, type=Path, metavar="FILE", help="qid iter docno rel"
    )
    parser.add_argument(
        "--run", required=True, type=Path, metavar="FILE", help="qid Q0 docno rank score tag"
    )
    parser.add_argument(
        "--output", required=True, type=Path, metavar="DIR", help="folder to write into"
    )
    parser.add_argument(
        "--k",
        type=int,
        nargs="+",
        metavar="K",
        help="cut-offs of the metrics listed in the written eval.yaml (default 10)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ks = args.k or DEFAULT_KS
    if any(k < 1 for k in ks):
        raise ConfigError(f"--k: every cut-off must be >= 1, got {ks}")
    summary = import_trec(args.qrels, args.run, args.output, ks)
    default = " (the default: --k not given)" if not args.k else ""
    print(
        f"import-trec: {summary.run_queries} run queries ({summary.run_documents} documents), "
        f"{summary.qrels_queries} judged queries ({summary.judgements} judgements), "
        f"{summary.queries_in_both} in both (trec_eval evaluates these)"
    )
    for path in summary.files:
        print(f"  wrote {path}")
    print(f"  eval.yaml lists precision, recall, map, ndcg, hitrate and mrr at k = {ks}{default}")
    folder = summary.files[0].parent
    print(
        f"next: recsys-eval run --mode offline --dataset {folder / 'dataset.yaml'} "
        f"--config {folder / 'eval.yaml'} --output report.json"
    )
    return EXIT_OK
