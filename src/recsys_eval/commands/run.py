"""`recsys-eval run`: load the dataset, build the models the mode needs, write the report."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from recsys_eval import __version__
from recsys_eval.config import RunConfig, load_run_config
from recsys_eval.errors import ConfigError, RecsysEvalError
from recsys_eval.metadata import dataset_fingerprint, effective_config
from recsys_eval.report import (
    REPORT_FORMAT_VERSION,
    RUN_ID_PREFIX,
    data_quality_section,
    dumps,
    join_rate_warnings,
    next_steps,
    validate_against,
    with_checks,
    write_atomic,
)
from recsys_eval.timeutil import format_rfc3339, parse_rfc3339, utc_now

OUTPUT_FORMATS = ("json", "md", "markdown", "html")
# Which schema and raw table each dataset source loads into.
SOURCE_TABLES = {
    "exposures": ("exposure.v1", "exposures"),
    "outcomes": ("outcome.v1", "outcomes"),
    "assignments": ("assignment.v1", "assignments"),
    "ranker_a": ("ranklist.v1", "ranker_a"),
    "ranker_b": ("ranklist.v1", "ranker_b"),
}
# Modes whose own section is computed by this version. The others stop before any work.
BUILT_MODES: dict[str, str] = {}
DATA_QUALITY_ONLY_MODES = ("offline",)
MIN_JOIN_RATE = 0.95  # the product docs' advice; the dbt tests warn at the same level


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="evaluate a dataset (offline, experiment, ope, interleaving, aa-check)",
        description="Load the dataset's JSONL files into a run database, build the dbt models "
        "the mode needs and write a report.v1 JSON.",
    )
    p.add_argument("--dataset", type=Path, help="dataset YAML (where the inputs are)")
    p.add_argument("--config", type=Path, help="eval YAML (what to compute)")
    p.add_argument("--output", type=Path, help="report path")
    p.add_argument("--mode", help="overrides mode: in the config")
    p.add_argument("--baseline", type=Path, help="earlier offline report to compare with")
    p.add_argument("--experiment-id", help="overrides experiment.experiment_id")
    p.add_argument("--output-format", default="json", help="json (default), md, markdown, html")
    p.add_argument(
        "--database",
        type=Path,
        help="keep the run database (raw tables and marts) at this DuckDB path; by default a "
        "temporary database is used and removed",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if not (args.dataset and args.config and args.output):
        raise ConfigError("--dataset, --config, and --output are required")
    fmt = (args.output_format or "json").strip().lower() or "json"
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(
            f"unknown output format {args.output_format!r} (json, md, markdown, html)"
        )
    if fmt != "json":
        raise RecsysEvalError(
            f"--output-format {fmt}: Markdown and HTML reports are not built in this version; "
            "use json"
        )
    cfg = load_run_config(args.dataset, args.config, args.mode, args.experiment_id)
    if cfg.mode not in BUILT_MODES and cfg.mode not in DATA_QUALITY_ONLY_MODES:
        raise RecsysEvalError(
            f"mode {cfg.mode!r} is not built in this version; available now: offline "
            "(data quality section). Nothing was loaded or written."
        )
    if args.baseline is not None and cfg.eval["offline"].get("gates"):
        raise RecsysEvalError(
            "offline gates need offline metrics, which are not built in this version; "
            "remove --baseline (nothing was loaded or written)"
        )
    output = args.output
    if not output.resolve().parent.is_dir():
        raise RecsysEvalError(
            f"cannot write {output}: folder {output.resolve().parent} does not exist"
        )

    created = utc_now()
    work_dir = Path(tempfile.mkdtemp(prefix="recsys-eval-run-"))
    try:
        database = args.database.resolve() if args.database else work_dir / "run.duckdb"
        loads = load_sources(cfg, database)
        row = build_data_quality(cfg, database, work_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    report = assemble_report(cfg, created, row, loads)
    validate_against(report, "report.v1")
    write_atomic(output, dumps(report))
    if cfg.mode in DATA_QUALITY_ONLY_MODES:
        print(
            f"note: {cfg.mode} metrics are not built in this version; {output} holds the data "
            "quality section",
            file=sys.stderr,
        )
    return 0


def load_sources(cfg: RunConfig, database: Path) -> dict[str, Any]:
    """Load every configured JSONL source; refuse a database that holds other files' rows."""
    from recsys_eval.loader import ensure_raw_schema, load_file
    from recsys_eval.warehouse import connect

    con = connect(database)
    try:
        ensure_raw_schema(con)
        results = {}
        for src in cfg.sources():
            schema, table = SOURCE_TABLES[src.name]
            assert src.path is not None  # only jsonl sources get this far
            results[src.name] = load_file(con, schema, src.path, table=table)
        wanted = {(r.table, r.file_sha256) for r in results.values()}
        held = set(con.execute("select target_table, file_sha256 from raw.load_ledger").fetchall())
        extra = held - wanted
        if extra:
            raise RecsysEvalError(
                f"database {database} also holds {len(extra)} load(s) of other files; a run "
                "reads every row of its tables, so use a fresh --database per dataset"
            )
    finally:
        con.close()
    return {
        "quarantined": sum(r.rows_quarantined for r in results.values()),
        "loads": results,
    }


def dbt_vars(cfg: RunConfig) -> dict[str, Any]:
    off, exp = cfg.eval["offline"], cfg.eval["experiment"]
    out: dict[str, Any] = {
        "recsys_eval__source": "raw",
        "recsys_eval__slice_keys": off.get("slice_keys", []),
        "recsys_eval__experiment_slice_keys": exp.get("slice_keys", []),
        "recsys_eval__srm_slice_keys": exp["srm"].get("slice_keys", []),
        # Offline and OPE ignore assignments even when the dataset lists them (reference §3).
        "recsys_eval__using_assignments": cfg.mode in ("experiment", "aa-check"),
        "recsys_eval__using_rankers": cfg.mode == "interleaving",
    }
    if cfg.mode in ("experiment", "aa-check") and exp.get("experiment_id"):
        out["recsys_eval__experiment_id"] = exp["experiment_id"]
    split = off.get("time_split")
    if cfg.mode == "offline" and split:
        fmt = "%Y-%m-%d %H:%M:%S.%f"
        out["recsys_eval__test_window_start"] = parse_rfc3339(split["test"]["start"]).strftime(fmt)
        out["recsys_eval__test_window_end"] = parse_rfc3339(split["test"]["end"]).strftime(fmt)
    return out


def build_data_quality(cfg: RunConfig, database: Path, work_dir: Path) -> dict[str, Any]:
    from recsys_eval.dbt_runner import build
    from recsys_eval.warehouse import connect

    build(database, dbt_vars(cfg), ["+fct_data_quality", "+fct_data_quality_checks"], work_dir)
    con = connect(database, read_only=True)
    try:
        schema = _relation_schema(con, "fct_data_quality")
        cur = con.execute(f"select * from \"{schema}\".fct_data_quality where scope = 'global'")
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
        checks = con.execute(
            f"""
            select check_name, severity, description,
                sum(failing_rows) as failing_rows, sum(total_rows) as total_rows
            from "{schema}".fct_data_quality_checks
            group by check_name, severity, description
            order by check_name
            """
        ).fetchall()
    finally:
        con.close()
    if len(rows) != 1:
        raise RecsysEvalError(f"internal error: fct_data_quality has {len(rows)} global rows")
    row = dict(zip(names, rows[0], strict=True))
    row["checks"] = [
        {
            "check_name": name,
            "severity": severity,
            "description": description,
            "failing_rows": int(failing),
            "total_rows": int(total),
            "failing_rate": failing / total if total else 0.0,
        }
        for name, severity, description, failing, total in checks
    ]
    return row


def _relation_schema(con: Any, name: str) -> str:
    found = con.execute(
        "select table_schema from information_schema.tables where table_name = ? "
        "order by table_schema",
        [name],
    ).fetchall()
    if not found:
        raise RecsysEvalError(f"internal error: dbt did not build {name}")
    return found[0][0]


def _git_commit() -> str | None:
    from recsys_eval.paths import project_dir

    try:
        out = subprocess.run(
            ["git", "-C", str(project_dir()), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def assemble_report(
    cfg: RunConfig, created: Any, row: dict[str, Any], loads: dict[str, Any]
) -> dict[str, Any]:
    with_assignments = cfg.mode in ("experiment", "aa-check")
    dq = with_checks(data_quality_section(row, with_assignments), row["checks"])
    cases = int(row["exposure_count"]) - int(row["duplicate_exposure_request_ids"])
    warnings = join_rate_warnings(dq, MIN_JOIN_RATE)
    warnings += [
        f"data_quality_{c['check_name']}: {c['failing_rows']} of {c['total_rows']}"
        for c in dq["checks"]
        if c["failing_rows"]
    ]
    if loads["quarantined"]:
        warnings.append(f"quarantined_rows: {loads['quarantined']}")
    report: dict[str, Any] = {
        "run_id": f"{RUN_ID_PREFIX[cfg.mode]}-{created.strftime('%Y%m%dT%H%M%SZ')}",
        "mode": cfg.mode,
        "created_at": format_rfc3339(created),
        "version": REPORT_FORMAT_VERSION,
        "binary_version": __version__,
        "effective_config": effective_config(cfg),
        "input_dataset_fingerprint": dataset_fingerprint(cfg),
        "summary": {
            "cases_evaluated": cases,
            "executive": {
                "decision": "not_configured",
                "highlights": [],
                "next_steps": next_steps(
                    decision="not_configured",
                    mode=cfg.mode,
                    has_baseline=False,
                    outcome_join_rate=dq["join_integrity"]["outcome_join_rate"],
                    cases_evaluated=cases,
                ),
            },
        },
        "data_quality": dq,
    }
    commit = _git_commit()
    if commit:
        report["git_commit"] = commit
    if cfg.mode in DATA_QUALITY_ONLY_MODES:
        warnings.append(f"{cfg.mode}_metrics_not_built: this version writes data quality only")
    if warnings:
        report["warnings"] = warnings
    return report
