"""TREC qrels and run files as exposures and outcomes (`recsys-eval import-trec`).

A run line is `qid Q0 docno rank score tag` (6 whitespace-separated fields; `Q0`, `rank` and `tag`
are read but ignored, as trec_eval does). A qrels line is `qid iteration docno relevance` (4 fields;
the iteration is ignored; the relevance an integer, possibly 0 or negative). Each run query becomes
one exposure whose items are ordered as trec_eval orders a ranking: score descending, then docno
descending (byte order of the UTF-8 docno, trec_eval's strcmp), ranked 1..n in that order, so the
`trec` dialect's rank order is trec_eval's. Each qrels line becomes one `click` outcome whose
`value` is the relevance grade, read with `offline.relevance: {grade: value}` (gain = the grade when
positive, else 0: a judged, non-relevant item). Queries only in the run give exposures without
outcomes, queries only in the qrels give outcomes without an exposure: in the `trec` dialect neither
is evaluated, as in trec_eval.

Malformed input (a wrong field count, a score that is not a finite number, a relevance that is not
an integer, a document listed twice for one query, a file that is not UTF-8 or has no lines) is
reported as `FILE:LINE: message [rule]`, every bad line up to MAX_ERRORS, and nothing is written.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from recsys_eval.errors import RecsysEvalError
from recsys_eval.report import check_writable

MAX_ERRORS = 20
MAX_EXACT_INTEGER = 2**53  # larger grades would not survive the outcome's double `value`
TIMESTAMP = "1970-01-01T00:00:00Z"  # TREC files carry no time: one fixed instant for every record
RUN_FIELDS = 6
QRELS_FIELDS = 4

RULE_ENCODING = "encoding"
RULE_FIELD_COUNT = "field_count"
RULE_SCORE = "score_number"
RULE_RELEVANCE = "relevance_integer"
RULE_DUPLICATE_DOCUMENT = "duplicate_document"
RULE_DUPLICATE_JUDGEMENT = "duplicate_judgement"
RULE_EMPTY = "empty_file"


@dataclass
class Problems:
    """The errors found so far, as `FILE:LINE: message [rule]` lines."""

    lines: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, path: Path, line_no: int, message: str, rule: str) -> None:
        self.count += 1
        if len(self.lines) < MAX_ERRORS:
            self.lines.append(f"{path}:{line_no}: {message} [{rule}]")

    def raise_if_any(self) -> None:
        if not self.count:
            return
        more = self.count - len(self.lines)
        tail = [f"... and {more} more error(s)"] if more else []
        raise RecsysEvalError(
            f"import-trec: {self.count} malformed line(s); nothing was written\n"
            + "\n".join(self.lines + tail)
        )


def _lines(path: Path, problems: Problems) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank line; a line that is not UTF-8 is a problem."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise RecsysEvalError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.add(path, line_no, f"not UTF-8 text (byte {exc.start + 1})", RULE_ENCODING)
                continue
            if line_no == 1:
                text = text.removeprefix("\ufeff")
            fields = text.split()
            if fields:
                yield line_no, fields


def read_run(path: Path, problems: Problems) -> dict[str, list[tuple[float, str]]]:
    """{qid: [(score, docno), ...]} in file order of the queries' first lines."""
    run: dict[str, list[tuple[float, str]]] = {}
    seen: dict[tuple[str, str], int] = {}
    lines = 0
    for line_no, fields in _lines(path, problems):
        lines += 1
        if len(fields) != RUN_FIELDS:
            problems.add(
                path,
                line_no,
                f"a run line has {RUN_FIELDS} fields (qid Q0 docno rank score tag), "
                f"found {len(fields)}",
                RULE_FIELD_COUNT,
            )
            continue
        qid, _, docno, _, score_text, _ = fields
        try:
            score = float(score_text)
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            problems.add(path, line_no, f"score {score_text!r} is not a finite number", RULE_SCORE)
            continue
        first = seen.setdefault((qid, docno), line_no)
        if first != line_no:
            problems.add(
                path,
                line_no,
                f"document {docno!r} is listed twice for query {qid!r} (first at line {first}); "
                "a run ranks each document once per query",
                RULE_DUPLICATE_DOCUMENT,
            )
            continue
        run.setdefault(qid, []).append((score, docno))
    if not lines and not problems.count:
        problems.add(path, 0, "the run has no lines", RULE_EMPTY)
    return run


def read_qrels(path: Path, problems: Problems) -> dict[str, dict[str, int]]:
    """{qid: {docno: relevance}} in file order."""
    qrels: dict[str, dict[str, int]] = {}
    seen: dict[tuple[str, str], int] = {}
    lines = 0
    for line_no, fields in _lines(path, problems):
        lines += 1
        if len(fields) != QRELS_FIELDS:
            problems.add(
                path,
                line_no,
                f"a qrels line has {QRELS_FIELDS} fields (qid iteration docno relevance), "
                f"found {len(fields)}",
                RULE_FIELD_COUNT,
            )
            continue
        qid, _, docno, relevance_text = fields
        try:
            relevance = int(relevance_text, 10)
        except ValueError:
            relevance = None
        if relevance is None or abs(relevance) > MAX_EXACT_INTEGER:
            problems.add(
                path,
                line_no,
                f"relevance {relevance_text!r} is not an integer within +-2^53",
                RULE_RELEVANCE,
            )
            continue
        first = seen.setdefault((qid, docno), line_no)
        if first != line_no:
            problems.add(
                path,
                line_no,
                f"document {docno!r} is judged twice for query {qid!r} (first at line {first})",
                RULE_DUPLICATE_JUDGEMENT,
            )
            continue
        qrels.setdefault(qid, {})[docno] = relevance
    if not lines and not problems.count:
        problems.add(path, 0, "the qrels have no lines", RULE_EMPTY)
    return qrels


def trec_order(documents: list[tuple[float, str]]) -> list[str]:
    """trec_eval's ranking of one query: score descending, then docno descending (strcmp)."""
    ordered = sorted(documents, key=lambda d: (d[0], d[1].encode("utf-8")), reverse=True)
    return [docno for _, docno in ordered]


def exposure_lines(run: dict[str, list[tuple[float, str]]]) -> Iterator[str]:
    for qid, documents in run.items():
        items = [
            {"item_id": docno, "rank": rank}
            for rank, docno in enumerate(trec_order(documents), start=1)
        ]
        record = {"request_id": qid, "user_id": qid, "ts": TIMESTAMP, "items": items}
        yield json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def outcome_lines(qrels: dict[str, dict[str, int]]) -> Iterator[str]:
    for qid, judged in qrels.items():
        for docno, relevance in judged.items():
            record = {
                "request_id": qid,
                "user_id": qid,
                "item_id": docno,
                "event_type": "click",
                "value": relevance,
                "ts": TIMESTAMP,
            }
            yield json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def dataset_yaml(folder: Path) -> str:
    exposures = json.dumps(str(folder / "exposures.jsonl"))
    outcomes = json.dumps(str(folder / "outcomes.jsonl"))
    return (
        "# Written by recsys-eval import-trec: the imported run (exposures) and qrels (outcomes).\n"
        f"exposures:\n  type: jsonl\n  path: {exposures}\n"
        f"outcomes:\n  type: jsonl\n  path: {outcomes}\n"
    )


def eval_yaml(ks: list[int]) -> str:
    metrics = "".join(
        f"    - {{name: {name}, k: {k}}}\n"
        for k in ks
        for name in ("precision", "recall", "map", "ndcg", "hitrate", "mrr")
    )
    return (
        "# Written by recsys-eval import-trec: trec_eval's definitions (dialect trec) with\n"
        "# the qrels' grades as gains (grade: value; a grade <= 0 is judged, not relevant).\n"
        "mode: offline\n"
        "offline:\n"
        "  dialect: trec\n"
        "  relevance: {grade: value}\n"
        "  metrics:\n" + metrics
    )


@dataclass
class ImportSummary:
    run_queries: int
    run_documents: int
    qrels_queries: int
    judgements: int
    queries_in_both: int
    files: list[Path]


def _write_all(targets: list[tuple[Path, Iterator[str]]]) -> None:
    """Every file to a temp file in its folder, then all renamed: a failure writes nothing."""
    temps: list[tuple[str, Path]] = []
    current = targets[0][0]
    try:
        for path, lines in targets:
            current = path
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temps.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                os.fchmod(fh.fileno(), 0o600)
                fh.writelines(lines)
                fh.flush()
                os.fsync(fh.fileno())
        for tmp, path in temps:
            current = path
            os.replace(tmp, path)
    except OSError as exc:
        raise RecsysEvalError(f"cannot write {current}: {exc.strerror or exc}") from None
    finally:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)


def import_trec(qrels_path: Path, run_path: Path, output: Path, ks: list[int]) -> ImportSummary:
    """Read and check both files, then write exposures.jsonl, outcomes.jsonl, dataset.yaml and
    eval.yaml into `output` (created if missing). Raises RecsysEvalError, writing nothing, on any
    malformed line."""
    for path in (qrels_path, run_path):
        if not path.is_file():
            raise RecsysEvalError(f"cannot read {path}: not a regular file")
    problems = Problems()
    run = read_run(run_path, problems)
    qrels = read_qrels(qrels_path, problems)
    problems.raise_if_any()
    if output.exists() and not output.is_dir():
        raise RecsysEvalError(f"cannot write into {output}: it exists and is not a folder")
    output.mkdir(parents=True, exist_ok=True)
    folder = output.resolve()
    names = ("exposures.jsonl", "outcomes.jsonl", "dataset.yaml", "eval.yaml")
    files = [check_writable(folder / name) for name in names]
    _write_all(
        [
            (files[0], exposure_lines(run)),
            (files[1], outcome_lines(qrels)),
            (files[2], iter([dataset_yaml(folder)])),
            (files[3], iter([eval_yaml(ks)])),
        ]
    )
    return ImportSummary(
        run_queries=len(run),
        run_documents=sum(len(d) for d in run.values()),
        qrels_queries=len(qrels),
        judgements=sum(len(j) for j in qrels.values()),
        queries_in_both=len(set(run) & set(qrels)),
        files=files,
    )
