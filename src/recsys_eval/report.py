"""Assemble, validate and write report.v1 JSON."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import jsonschema

from recsys_eval.errors import RecsysEvalError
from recsys_eval.paths import schemas_dir

REPORT_FORMAT_VERSION = "0.1.0"  # the reference's report format version
RUN_ID_PREFIX = {
    "offline": "offline",
    "experiment": "experiment",
    "ope": "ope",
    "interleaving": "interleave",
    "aa-check": "aa-check",
}
NEXT_STEP_FAIL = "Investigate failing gates and re-run after fixes."
NEXT_STEP_BASELINE = "Add a baseline report to measure deltas over time."
NEXT_STEP_JOINS = "Improve exposure/outcome joins (request_id alignment) to raise join rates."
NEXT_STEP_SAMPLE = "Increase sample size to stabilize metrics."
NEXT_STEP_VARIANTS = "Include at least two variants to compare experiment outcomes."


def data_quality_section(row: dict[str, Any], with_assignments: bool) -> dict[str, Any]:
    """The reference's `data_quality` object (§3) from the global row of fct_data_quality."""
    section: dict[str, Any] = {
        "exposure_completeness": {
            "total": int(row["exposure_total"]),
            "missing": int(row["exposure_missing"]),
            "missing_rate": row["exposure_missing_rate"],
        },
        "outcome_completeness": {
            "total": int(row["outcome_total"]),
            "missing": int(row["outcome_missing"]),
            "missing_rate": row["outcome_missing_rate"],
        },
    }
    if with_assignments:
        section["assignment_completeness"] = {
            "total": int(row["assignment_total"]),
            "missing": int(row["assignment_missing"]),
            "missing_rate": row["assignment_missing_rate"],
        }
    join = {
        "exposure_count": int(row["exposure_count"]),
        "outcome_count": int(row["outcome_count"]),
        "assignments_count": int(row["assignments_count"]) if with_assignments else 0,
        "exposure_join_rate": row["exposure_join_rate"],
        "outcome_join_rate": row["outcome_join_rate"],
        "assignment_join_rate": row["assignment_join_rate"] if with_assignments else 0,
    }
    duplicates = int(row["duplicate_exposure_request_ids"])
    if duplicates:
        join["duplicate_exposure_request_ids"] = duplicates
    section["join_integrity"] = join
    return section


def with_checks(section: dict[str, Any], checks: list[dict[str, Any]]) -> dict[str, Any]:
    """Add the checks the reference lacks (orphans, items not shown, rank gaps, ...) under
    `data_quality.checks`, one entry per check summed over tenants and surfaces."""
    return {**section, "checks": checks}


def join_rate_warnings(
    section: dict[str, Any], minimum: float, with_assignments: bool = False
) -> list[str]:
    """Join rates that mean the data is broken, below the product docs' 95 %:
    `low_outcome_join_rate` (outcomes whose request_id matches no exposure: a logging or
    request_id bug) and, in experiment and aa-check, `low_assignment_join_rate` (assignments
    with no kept exposure). exposure_join_rate (the share of exposures with any outcome) is a
    click-through-like rate on healthy data, so it stays in the report but never warns."""
    join = section["join_integrity"]
    names = ["outcome_join_rate"]
    if with_assignments:
        names.append("assignment_join_rate")
    counts = {"outcome_join_rate": "outcome_count", "assignment_join_rate": "assignments_count"}
    out = []
    for name in names:
        if join[counts[name]] and join[name] < minimum:
            out.append(f"low_{name}: {join[name]:.4f} is below {minimum:g}")
    return out


def next_steps(
    *,
    decision: str,
    mode: str,
    has_baseline: bool,
    outcome_join_rate: float | None,
    cases_evaluated: int,
    n_variants: int | None = None,
) -> list[str]:
    """The reference's next-step hints (§8.4), in its order, at most three."""
    steps: list[str] = []
    if decision == "fail":
        steps.append(NEXT_STEP_FAIL)
    if mode == "offline" and not has_baseline:
        steps.append(NEXT_STEP_BASELINE)
    if outcome_join_rate is not None and 0 < outcome_join_rate < 0.8:
        steps.append(NEXT_STEP_JOINS)
    if 0 < cases_evaluated < 50:
        steps.append(NEXT_STEP_SAMPLE)
    if mode == "experiment" and n_variants is not None and n_variants < 2 and len(steps) < 3:
        steps.append(NEXT_STEP_VARIANTS)
    return steps[:3]


def canonical(value: Any) -> Any:
    """Numbers as the reference prints them: integral floats without '.0'; NaN/inf refused."""
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RecsysEvalError(f"refusing to write a non-finite number ({value}) in a report")
        if value.is_integer() and abs(value) < 1e15:
            return int(value)
    return value


def dumps(report: dict[str, Any]) -> str:
    """Deterministic JSON: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(canonical(report), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _schema(name: str) -> dict[str, Any]:
    return json.loads((schemas_dir() / f"{name}.json").read_text())


def validate_against(document: dict[str, Any], schema_name: str) -> None:
    validator = jsonschema.Draft7Validator(
        _schema(schema_name), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(canonical(document)), key=lambda e: list(e.path))
    if errors:
        detail = "; ".join(f"{e.json_path}: {e.message}" for e in errors[:5])
        raise RecsysEvalError(f"internal error: the {schema_name} document is invalid: {detail}")


def check_writable(path: Path) -> Path:
    """The absolute `path` (its folder resolved, the file name kept) if a report can be written
    there: its folder exists and is writable, and `path` is absent or a regular file. A device such
    as /dev/full, a directory or a FIFO is never replaced, and a symbolic link is refused rather
    than followed (a planted link would redirect the write to its target). Raises RecsysEvalError
    naming the path otherwise."""
    path = Path(path)
    folder = path.parent.resolve()
    path = folder / path.name if path.name not in ("", ".", "..") else path.resolve()
    if not folder.is_dir():
        raise RecsysEvalError(f"cannot write {path}: folder {folder} does not exist")
    if os.path.islink(path):
        raise RecsysEvalError(
            f"cannot write {path}: it is a symbolic link (to {os.readlink(path)}); refusing to "
            "write through it: remove the link or choose another path"
        )
    if path.exists() and not path.is_file():
        raise RecsysEvalError(f"cannot write {path}: it exists and is not a regular file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RecsysEvalError(f"cannot write {path}: folder {folder} is not writable")
    return path


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write `text` to `path` via a temp file in the same folder and a rename, so a crash or a
    full disk never leaves a half-written file behind. The temp file is created with O_EXCL and
    O_NOFOLLOW (tempfile.mkstemp) and its mode set through its descriptor; the rename replaces a
    link planted at `path` after the check, never its target."""
    path = check_writable(path)
    folder = path.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise RecsysEvalError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise RecsysEvalError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
