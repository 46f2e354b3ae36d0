"""`recsys-eval import-trec` against pytrec_eval (trec_eval) on generated qrels and runs.

The generated files have score ties (trec_eval breaks them by docno descending), graded, zero and
negative judgements, unjudged documents, queries only in the run and queries only in the qrels. The
files are imported with the CLI, evaluated with `recsys-eval run --mode offline` and the written
eval.yaml (dialect trec, grade: value), and the report's means and the per-request values in
fct_offline_request_metrics must equal pytrec_eval's, fed the raw files, to 1e-12. trec_eval has no
cut-off reciprocal rank: mrr@k is pytrec_eval's recip_rank when its first relevant document is within
k, else 0. Malformed lines stop the import with FILE:LINE and the rule, writing nothing.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from recsys_eval.cli import main
from recsys_eval.trec_import import trec_order

pytrec_eval = pytest.importorskip("pytrec_eval")

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-12
KS = [1, 3, 5, 10, 50]
TREC_MEASURES = {
    "precision": "P",
    "recall": "recall",
    "map": "map_cut",
    "ndcg": "ndcg_cut",
    "hitrate": "success",
}


def cli_inline(capsys, *args: str) -> subprocess.CompletedProcess:
    """The CLI in this process (no interpreter start-up): its exit code and stderr."""
    code = main(list(args))
    return subprocess.CompletedProcess(args, code, "", capsys.readouterr().err)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recsys_eval.cli", *args], capture_output=True, text=True, cwd=ROOT
    )


def generate(folder: Path, n_queries: int = 300, seed: int = 11) -> tuple[Path, Path]:
    rng = random.Random(seed)
    run_lines, qrels_lines = [], []
    for n in range(n_queries):
        qid = f"q{n}"
        pool = [f"doc{rng.randint(0, 400)}" for _ in range(30)]
        ranked = list(dict.fromkeys(pool))[: rng.randint(1, 25)]
        in_run = rng.random() > 0.08  # some queries only in the qrels
        in_qrels = rng.random() > 0.12  # some only in the run
        if in_run:
            for position, docno in enumerate(ranked):
                # coarse scores: many ties, broken by docno descending
                score = (
                    rng.choice([1, 2, 3, 4]) if rng.random() < 0.7 else round(rng.random() * 10, 3)
                )
                run_lines.append(f"{qid} Q0 {docno} {position + 1} {score} tag")
        if in_qrels:
            judged = rng.sample(ranked, k=min(len(ranked), rng.randint(0, 8)))
            judged += [f"unseen{rng.randint(0, 50)}" for _ in range(rng.randint(0, 3))]
            for docno in dict.fromkeys(judged):
                grade = rng.choice([-1, 0, 0, 1, 1, 2, 3])
                qrels_lines.append(f"{qid} 0 {docno} {grade}")
    rng.shuffle(run_lines)  # a query's lines need not be together nor in order
    run, qrels = folder / "run.txt", folder / "qrels.txt"
    run.write_text("\n".join(run_lines) + "\n")
    qrels.write_text("\n".join(qrels_lines) + "\n")
    return qrels, run


def parse(qrels: Path, run: Path) -> tuple[dict, dict]:
    """The files as pytrec_eval takes them, read independently of the importer."""
    judged: dict = {}
    for line in qrels.read_text().splitlines():
        qid, _, docno, grade = line.split()
        judged.setdefault(qid, {})[docno] = int(grade)
    ranked: dict = {}
    for line in run.read_text().splitlines():
        qid, _, docno, _, score, _ = line.split()
        ranked.setdefault(qid, {})[docno] = float(score)
    return judged, ranked


def peer_values(judged: dict, ranked: dict) -> dict[tuple[str, int], dict[str, float]]:
    measures = {f"{m}.{k}" for m in TREC_MEASURES.values() for k in KS} | {"recip_rank"}
    scores = pytrec_eval.RelevanceEvaluator(judged, measures).evaluate(ranked)
    values: dict = {}
    for qid, row in scores.items():
        for k in KS:
            for family, measure in TREC_MEASURES.items():
                values.setdefault((family, k), {})[qid] = row[f"{measure}_{k}"]
            rr = row["recip_rank"]
            values.setdefault(("mrr", k), {})[qid] = rr if rr > 0 and round(1 / rr) <= k else 0.0
    return values


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trec")
    qrels, run = generate(folder)
    out = folder / "imported"
    proc = cli(
        "import-trec",
        "--qrels",
        str(qrels),
        "--run",
        str(run),
        "--output",
        str(out),
        "--k",
        *map(str, KS),
    )
    assert proc.returncode == 0, proc.stderr
    return folder, qrels, run, out


def test_trec_order_is_score_then_docno_descending():
    # ties on score: docno descending in byte order ("b" > "B" > "A10" > "A1")
    documents = [(1.0, "A1"), (2.0, "z"), (1.0, "b"), (1.0, "A10"), (1.0, "B"), (3.0, "a")]
    assert trec_order(documents) == ["a", "z", "b", "B", "A10", "A1"]


def test_import_then_run_equals_pytrec_eval(imported):
    folder, qrels, run, out = imported
    judged, ranked = parse(qrels, run)
    # the generated data has what the test is about
    assert set(ranked) - set(judged) and set(judged) - set(ranked)
    grades = [g for docs in judged.values() for g in docs.values()]
    assert {-1, 0, 1, 2, 3} <= set(grades)
    assert any(d not in judged.get(q, {}) for q, docs in ranked.items() for d in docs)
    assert any(len(set(docs.values())) < len(docs) for docs in ranked.values())

    report_path, database = folder / "report.json", folder / "run.duckdb"
    proc = cli(
        "run", "--mode", "offline", "--dataset", str(out / "dataset.yaml"), "--config", str(out / "eval.yaml"),
        "--output", str(report_path), "--database", str(database), "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    peers = peer_values(judged, ranked)
    evaluated = set(judged) & set(ranked)
    assert report["summary"]["cases_evaluated"] == len(evaluated)
    means = {}
    for metric in report["offline"]["metrics"]:
        family, k = metric["name"].split("@")
        means[(family, int(k))] = metric["value"]
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute(
            "select metric_family, k, request_id, metric_value from recsys_eval_marts.fct_offline_request_metrics"
        ).fetchall()
    ours: dict = {}
    for family, k, request_id, value in rows:
        ours.setdefault((family, k), {})[request_id] = value
    assert set(peers) == set(ours) == set(means)
    for key, per_query in peers.items():
        assert set(per_query) == evaluated == set(ours[key]), key
        for qid, value in per_query.items():
            assert ours[key][qid] == pytest.approx(value, abs=TOLERANCE, rel=0), (key, qid)
        mean = sum(per_query.values()) / len(per_query)
        assert means[key] == pytest.approx(mean, abs=TOLERANCE, rel=0), key


@pytest.mark.parametrize(
    ("file", "text", "rule"),
    [
        ("run", "q1 Q0 d1 1 1.0\n", "field_count"),
        ("run", "q1 Q0 d1 1 nan tag\n", "score_number"),
        ("run", "q1 Q0 d1 1 1 tag\nq1 Q0 d1 2 0.5 tag\n", "duplicate_document"),
        ("qrels", "q1 0 d1 1.5\n", "relevance_integer"),
        ("qrels", "q1 0 d1 1\nq1 0 d1 2\n", "duplicate_judgement"),
        ("qrels", "q1 0 \xff 1\n", "encoding"),
        ("qrels", "\n", "empty_file"),
    ],
)
def test_malformed_lines_name_file_line_rule_and_write_nothing(tmp_path, capsys, file, text, rule):
    files = {"run": "q1 Q0 d1 1 1 tag\n", "qrels": "q1 0 d1 1\n"}
    files[file] = text
    for name, content in files.items():
        data = content.encode("latin-1") if "\xff" in content else content.encode()
        (tmp_path / name).write_bytes(data)
    out = tmp_path / "out"
    proc = cli_inline(
        capsys,
        "import-trec",
        "--qrels",
        str(tmp_path / "qrels"),
        "--run",
        str(tmp_path / "run"),
        "--output",
        str(out),
    )
    assert proc.returncode == 1
    line = 0 if rule == "empty_file" else text.count("\n")
    assert f"{tmp_path / file}:{line}: " in proc.stderr and f"[{rule}]" in proc.stderr, proc.stderr
    assert "nothing was written" in proc.stderr
    assert not out.exists()


def test_a_linked_output_file_is_refused(tmp_path, capsys):
    (tmp_path / "run").write_text("q1 Q0 d1 1 1 tag\n")
    (tmp_path / "qrels").write_text("q1 0 d1 1\n")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "outcomes.jsonl").symlink_to(victim)
    proc = cli_inline(
        capsys,
        "import-trec",
        "--qrels",
        str(tmp_path / "qrels"),
        "--run",
        str(tmp_path / "run"),
        "--output",
        str(out),
    )
    assert proc.returncode == 1
    assert "outcomes.jsonl: it is a symbolic link" in proc.stderr, proc.stderr
    assert victim.read_text() == "keep\n" and not (out / "exposures.jsonl").exists()
