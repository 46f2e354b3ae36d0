"""`recsys-eval run`: load the dataset, build the models the mode needs, write the report."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from recsys_eval import __version__, offline_significance, spark_target, tempdirs
from recsys_eval.artifacts import provenance
from recsys_eval.commands.load import add_pii_guard_flag
from recsys_eval.config import RunConfig, load_run_config
from recsys_eval.errors import (
    EXIT_ERROR,
    EXIT_FAIL,
    EXIT_GATE,
    EXIT_HOLD,
    EXIT_OK,
    ConfigError,
    RecsysEvalError,
)
from recsys_eval.experiment_over_time import over_time_blocks, over_time_warnings, sequential_vars
from recsys_eval.experiment_report import (
    EXPERIMENT_MARTS,
    aa_check_section,
    control_choice_warnings,
    decide,
    experiment_highlights,
    experiment_section,
    experiment_vars,
    experiment_warnings,
)
from recsys_eval.metadata import dataset_fingerprint, effective_config
from recsys_eval.modes import (
    MARTS_SCHEMA,
    STAGING_SCHEMA,
    ModeContext,
    ModeOutput,
    model_schema,
    plugin_for,
)
from recsys_eval.offline_report import (
    case_counts,
    compare_baseline,
    evaluate_gates,
    highlights,
    key_deltas,
    offline_section,
    read_baseline,
)
from recsys_eval.privacy import merge_counts
from recsys_eval.privacy import summary as pii_summary
from recsys_eval.redaction import redact_text
from recsys_eval.report import (
    REPORT_FORMAT_VERSION,
    RUN_ID_PREFIX,
    check_writable,
    data_quality_section,
    dumps,
    join_rate_warnings,
    next_steps,
    validate_against,
    with_checks,
    write_atomic,
)
from recsys_eval.stages import BuildProgress, StageLog, Timer
from recsys_eval.timeutil import format_rfc3339, parse_rfc3339, utc_now
from recsys_eval.warehouse import private_files

OUTPUT_FORMATS = ("json", "md", "markdown", "html")
# Which schema and raw table each dataset source loads into.
SOURCE_TABLES = {
    "exposures": ("exposure.v1", "exposures"),
    "outcomes": ("outcome.v1", "outcomes"),
    "assignments": ("assignment.v1", "assignments"),
    "ranker_a": ("ranklist.v1", "ranker_a"),
    "ranker_b": ("ranklist.v1", "ranker_b"),
    "interleaved_exposures": ("interleaved_exposure.v1", "interleaved_exposures"),
}
# Modes wired into this module; the others come as plug-ins (recsys_eval.modes) or stop before
# any work when their plug-in is not in this version.
BUILT_MODES = ("offline", "experiment", "aa-check")
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
    p.add_argument(
        "--output-format",
        default="json",
        help="json (default), md, markdown, html: the format of --output (md and html refuse an "
        "--output ending in .json)",
    )
    p.add_argument(
        "--html", type=Path, metavar="PATH", help="also write the HTML view of the report here"
    )
    p.add_argument(
        "--md", type=Path, metavar="PATH", help="also write the Markdown view of the report here"
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no stage lines or progress on stderr (errors and warnings still print)",
    )
    p.add_argument(
        "--fail-on-quarantine",
        action="store_true",
        help="exit 1 when any input line was quarantined (after writing the report and the "
        "quarantine file)",
    )
    p.add_argument(
        "--database",
        type=Path,
        help="keep the run database (raw tables and marts) at this DuckDB path; by default a "
        "temporary database is used and removed",
    )
    p.add_argument(
        "--memory-limit",
        help="DuckDB memory limit for the models, e.g. 6GB or 50%% (default: 80%% of RAM); "
        "beyond it DuckDB spills to disk",
    )
    p.add_argument(
        "--full-tests",
        action="store_true",
        help="also run dbt's unit tests and the invariants of the staging and intermediate models "
        "(tag model_invariant; the bundled seeds build runs them in CI) on this data; by default "
        "the run tests the marts it reads",
    )
    p.add_argument(
        "--target",
        default="duckdb",
        help="where the models build: duckdb (default, the run database) or spark_thrift (a "
        "Spark Thrift server: RECSYS_EVAL_SPARK_THRIFT_HOST/_PORT/_USER, README 'Spark')",
    )
    p.add_argument(
        "--spark-stage-dir",
        type=Path,
        metavar="DIR",
        help="with --target spark_thrift: the folder the raw tables are staged in as Parquet, "
        "readable at the same path by the Thrift server and the executors (default: the run's "
        "temporary folder, right for a cluster on this machine)",
    )
    add_pii_guard_flag(p)  # overrides privacy.pii_guard in the eval config
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if not (args.dataset and args.config and args.output):
        raise ConfigError("--dataset, --config, and --output are required")
    fmt = (args.output_format or "json").strip().lower() or "json"
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(
            f"unknown output format {args.output_format!r} (json, md, markdown, html)"
        )
    render = _renderer(fmt)
    extra_views = _extra_views(args, fmt)
    target = spark_target.check_target(getattr(args, "target", None) or "duckdb")
    stage_root = getattr(args, "spark_stage_dir", None)
    if stage_root is not None:
        if target != spark_target.SPARK_TARGET:
            raise ConfigError("--spark-stage-dir is for --target spark_thrift")
        stage_root = spark_target.check_stage_dir(stage_root)
    memory_limit = getattr(args, "memory_limit", None)
    if memory_limit is not None and target != "duckdb":
        raise ConfigError(
            f"--memory-limit is DuckDB's; with --target {target} the models run on Spark (size "
            "its executors instead)"
        )
    if memory_limit is not None:
        from recsys_eval.dbt_runner import check_memory_limit

        memory_limit = check_memory_limit(memory_limit)  # refused before any work
    cfg = load_run_config(args.dataset, args.config, args.mode, args.experiment_id)
    if getattr(args, "pii_guard", None):
        cfg.eval.setdefault("privacy", {})["pii_guard"] = args.pii_guard
    if cfg.mode not in BUILT_MODES and plugin_for(cfg.mode) is None:
        raise RecsysEvalError(
            f"mode {cfg.mode!r} is not built in this version; available now: "
            f"{', '.join(BUILT_MODES)}. "
            "Nothing was loaded or written."
        )
    # The reference ignores --baseline outside offline mode; a bad baseline fails before work.
    baseline = read_baseline(args.baseline) if args.baseline and cfg.mode == "offline" else None
    # offline.significance: the baseline's per-request values, checked before any work
    significance = offline_significance.settings(cfg.eval["offline"])[0]["enabled"]
    significance = significance and cfg.mode == "offline"
    if significance and target != "duckdb":
        raise ConfigError(
            f"offline.significance is not available with --target {target} yet (it moves each "
            "request's values between runs); run it on DuckDB. Nothing was loaded or written."
        )
    baseline_requests = (
        offline_significance.check_baseline_file(args.baseline, baseline)
        if significance and baseline is not None
        else None
    )
    output = args.output
    if not output.resolve().parent.is_dir():
        raise RecsysEvalError(
            f"cannot write {output}: folder {output.resolve().parent} does not exist"
        )
    # Every destination (a read-only folder, a device, a symbolic link) fails before any work.
    check_writable(output)
    if significance:
        check_writable(offline_significance.sidecar_path(output))
    for path, _fmt in extra_views:
        check_writable(path)
    # Without a kept --database, quarantined lines are kept beside the report.
    quarantine_file = None if args.database else quarantine_path(output)
    if quarantine_file is not None:
        check_writable(quarantine_file)
    created = utc_now()
    history_file = history_path(cfg, created)
    if decision_enabled(cfg):
        check_writable(decision_path(cfg, output))
    if args.database:
        from recsys_eval.dbt_runner import check_database_path

        check_database_path(args.database.resolve())  # what dbt-duckdb can open, before any work

    endpoint = None
    if target == spark_target.SPARK_TARGET:
        endpoint = spark_target.Endpoint.from_env()
        endpoint.check_reachable()  # before any work: host and port in the message
    # Artifact provenance (§8.6): a manifest that cannot be read stops the run before any work.
    artifacts = provenance(cfg.eval, str(cfg.eval_file))
    for warning in (artifacts or {}).get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)

    log = StageLog.for_stderr(bool(getattr(args, "quiet", False)))
    timer = Timer()
    quarantined_lines: list[str] = []
    with tempdirs.temporary_folder(tempdirs.RUN_PREFIX) as work_dir, private_files():
        database = args.database.resolve() if args.database else work_dir / "run.duckdb"
        if not args.database:
            from recsys_eval.dbt_runner import check_database_path

            check_database_path(database, "the temporary run database (set TMPDIR or --database)")
        # after every check that needs no work: a refused run prints its error line only
        log.line(
            f"config read: {cfg.mode} mode, sources {', '.join(s.name for s in cfg.sources())}"
        )
        with timer.stage("load"):
            loads = load_sources(cfg, database, log)
            if baseline_requests is not None:
                offline_significance.load_baseline(database, baseline_requests)
        if quarantine_file is not None and loads["quarantined"]:
            quarantined_lines = read_quarantine(database, loads["loads"].values())
        with (
            timer.stage("models"),
            (
                spark_target.spark_run(endpoint, stage_root or work_dir)
                if endpoint is not None
                else contextlib.nullcontext()
            ) as spark,
        ):
            marts = build_marts(
                cfg,
                database,
                work_dir,
                parse_cache=args.database is not None,
                memory_limit=memory_limit,
                full_tests=bool(getattr(args, "full_tests", False)),
                log=log,
                paired=baseline_requests is not None,
                spark=spark,
            )
            if baseline_requests is not None:
                marts["paired_tests"] = offline_significance.read_mart(database)
            sidecar = (
                offline_significance.export_request_metrics(
                    database, check_writable(output).parent, run_id(cfg.mode, created)
                )
                if significance
                else None
            )
        log.line(_models_line(marts, timer.seconds("models")))
        log.line(_checks_line(marts))

    with timer.stage("report"):
        report = assemble_report(cfg, created, marts, loads, baseline, artifacts)
    report["timings"] = timer.total()  # the only part of a report that differs between reruns
    validate_against(report, "report.v1")  # the reference's contract, unchanged
    validate_against(report, "report.v2")  # v1 with the OPE and interleaving sections typed
    text = dumps(report)
    # The views render the JSON as written, so they equal `recsys-eval render` of the file.
    written = json.loads(text) if render is not None or extra_views else report
    write_atomic(output, text if render is None else render(written, fmt))
    if sidecar is not None:  # this run's per-request values, for a later run's --baseline
        offline_significance.publish(sidecar, output)
    for path, view_fmt in extra_views:
        write_atomic(path, _renderer(view_fmt)(written, view_fmt))
    if history_file is not None:
        write_history(history_file, text)
    if quarantine_file is not None:
        write_quarantine(quarantine_file, quarantined_lines)
    names = ", ".join(redact_text(str(p)) for p in [output, *(p for p, _ in extra_views)])
    log.line(f"report written: {names} ({timer.total()['total_s']:.1f} s in all)")
    if loads["quarantined"]:
        notice = quarantine_notice(loads, args.database, quarantine_file)
        print(f"warning: {notice}", file=sys.stderr)
    code = EXIT_OK
    decision = report.get("experiment", {}).get("decision")
    if decision is not None:
        if args.database:
            with private_files():
                record_decision(args.database.resolve(), report, decision)
        code = write_decision(decision, report, cfg, output)
    else:
        failed = [g for g in report.get("gates", []) if not g["passed"]]
        for gate in failed:
            print(
                f"ERROR: gate failed: {gate['metric']} delta={gate['delta']:.6f}", file=sys.stderr
            )
        code = EXIT_GATE if failed else EXIT_OK
    if loads["quarantined"] and getattr(args, "fail_on_quarantine", False):
        print(
            f"error: {loads['quarantined']:,} input line(s) quarantined and --fail-on-quarantine "
            "is set: the report was written; fix or remove those lines and run again",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return code


def quarantine_path(output: Path) -> Path:
    """`<output>.quarantine.jsonl`: the quarantined lines of a run without --database."""
    return output.with_name(output.name + ".quarantine.jsonl")


def read_quarantine(database: Path, results: Any) -> list[str]:
    """The quarantined lines of this run's loads, one JSON object per line
    ({source_file, line_no, errors, raw_text}), in load and line order."""
    from recsys_eval.warehouse import connect

    load_ids = sorted({r.load_id for r in results if r.rows_quarantined and r.load_id})
    if not load_ids:
        return []
    con = connect(database, read_only=True)
    try:
        rows = con.execute(
            "select source_file, line_no, errors, raw_text from raw.quarantine "
            f"where load_id in ({', '.join('?' * len(load_ids))}) "
            "order by load_seq, source_file, line_no",
            load_ids,
        ).fetchall()
    finally:
        con.close()
    out = []
    for source_file, line_no, errors, raw_text in rows:
        try:
            parsed = json.loads(errors) if errors else []
        except json.JSONDecodeError:
            parsed = errors
        record = {"source_file": source_file, "line_no": line_no, "errors": parsed,
                  "raw_text": raw_text}  # fmt: skip
        out.append(json.dumps(record, ensure_ascii=False, sort_keys=True))
    return out


def write_quarantine(path: Path, lines: list[str]) -> None:
    """Write the quarantine file (0600) when lines were quarantined; otherwise remove the file an
    earlier run on the same output left (it would describe another run), never a link."""
    if lines:
        write_atomic(path, "\n".join(lines) + "\n")
    elif path.is_file() and not path.is_symlink():
        path.unlink()


def quarantine_notice(loads: dict[str, Any], database: Path | None, file: Path | None) -> str:
    """How many lines were quarantined and how to see them."""
    count = loads["quarantined"]
    head = f"{count:,} input line(s) quarantined (invalid, not evaluated)"
    if file is not None:
        return f"{head}; see them in {redact_text(str(file))} (one JSON object per line)"
    ids = sorted({r.load_id for r in loads["loads"].values() if r.rows_quarantined})
    where = ", ".join(f"'{i}'" for i in ids)
    return (
        f"{head}; see them in {redact_text(str(database))} with: select * from raw.quarantine "
        f"where load_id in ({where})"
    )


def _extra_views(args: argparse.Namespace, fmt: str) -> list[tuple[Path, str]]:
    """(path, format) of --html and --md; refuses a view written into a .json path (--output
    with --output-format md/html, --html/--md ending in .json) or two outputs on one path."""
    if fmt != "json" and args.output.suffix.lower() == ".json":
        raise ConfigError(
            f"--output-format {fmt} would write {'HTML' if fmt == 'html' else 'Markdown'} into "
            f"{args.output}, a .json path; give the JSON report there and add "
            f"--{'html' if fmt == 'html' else 'md'} PATH for the view, or an --output not ending "
            "in .json"
        )
    views = []
    for flag, view_fmt in (("html", "html"), ("md", "md")):
        path = getattr(args, flag, None)
        if path is None:
            continue
        if path.suffix.lower() == ".json":
            raise ConfigError(
                f"--{flag} {path}: a .json path; give the {view_fmt.upper()} view a .{flag} name"
            )
        _renderer(view_fmt)  # the renderer is in this version, before any work
        views.append((path, view_fmt))
    seen = [args.output.absolute()]
    for path, _fmt in views:
        if path.absolute() in seen:
            raise ConfigError(
                f"{path}: given for two outputs (--output, --html, --md); give each its own path"
            )
        seen.append(path.absolute())
    return views


def _models_line(marts: dict[str, Any], seconds: float) -> str:
    progress = marts.get("build_progress")
    nodes = marts.get("build_nodes") or []
    if progress is not None and progress.via == "plan":
        return (
            f"models: {progress.steps}/{progress.steps} steps replayed from the cached plan "
            f"(no dbt) in {seconds:.1f} s"
        )
    return f"models: built with dbt ({len(nodes)} nodes) in {seconds:.1f} s"


def _checks_line(marts: dict[str, Any]) -> str:
    checks = marts.get("checks") or []
    failing = sum(1 for c in checks if c["failing_rows"])
    tests = [n for n in marts.get("build_nodes") or [] if n.unique_id.startswith("test.")]
    warned = sum(1 for n in tests if n.status == "warn")
    return (
        f"checks: {len(checks)} data-quality checks ({failing} with failing rows), "
        f"{len(tests)} dbt tests ({warned} warned)"
    )


def run_id(mode: str, created: Any) -> str:
    """`<mode prefix>-<created, UTC, to the second>`, e.g. offline-20240301T120000Z."""
    return f"{RUN_ID_PREFIX[mode]}-{created.strftime('%Y%m%dT%H%M%SZ')}"


def decision_enabled(cfg: RunConfig) -> bool:
    return cfg.mode == "experiment" and bool(
        cfg.eval["experiment"].get("decision", {}).get("enabled")
    )


def decision_path(cfg: RunConfig, output: Path) -> Path:
    """`experiment.decision.output_path`, else `<output>.decision.json`."""
    configured = cfg.eval["experiment"].get("decision", {}).get("output_path")
    return Path(configured) if configured else output.with_name(output.name + ".decision.json")


def history_path(cfg: RunConfig, created: Any) -> Path | None:
    """Where `offline.history_dir` gets this run's copy (None without one), checked before any
    work: the folder (or, when it does not exist yet, its nearest existing parent) must be a
    writable folder and `<run_id>.json` there a new or regular file, never a symbolic link."""
    history = cfg.eval["offline"].get("history_dir")
    if cfg.mode != "offline" or not history:
        return None
    folder = Path(history).absolute()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():
            break  # a dangling link: refused just below
        existing = existing.parent
    if not existing.is_dir():
        raise RecsysEvalError(
            f"offline.history_dir {history}: {existing} is not a folder; fix history_dir in "
            f"{cfg.eval_file}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RecsysEvalError(
            f"offline.history_dir {history}: folder {existing} is not writable; fix its "
            f"permissions or history_dir in {cfg.eval_file}"
        )
    path = folder / f"{run_id(cfg.mode, created)}.json"
    if existing == folder:
        check_writable(path)
    return path


def write_history(path: Path, text: str) -> None:
    """Create the history folder (0750) if needed and write the report copy there."""
    try:
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as exc:
        raise RecsysEvalError(
            f"cannot create offline.history_dir {path.parent}: {exc.strerror or exc} (the "
            "report itself was written)"
        ) from None
    write_atomic(path, text)


def _renderer(fmt: str) -> Any:
    """The Markdown / HTML renderer for `fmt`, None for JSON; fails before any work when the
    renderer is not in this version."""
    if fmt == "json":
        return None
    try:
        from recsys_eval.render import render_report
    except ModuleNotFoundError as exc:
        if exc.name and "recsys_eval.render".startswith(exc.name):
            raise RecsysEvalError(
                f"--output-format {fmt}: Markdown and HTML reports are not built in this "
                "version; use json"
            ) from None
        raise
    return render_report


def record_decision(database: Path, report: dict[str, Any], decision: dict[str, Any]) -> None:
    """Append the decision to `experiment_decisions` in the kept run database: one row per run,
    so analysts can query the decisions next to the marts (the table is the CLI's, not dbt's)."""
    import json

    from recsys_eval.warehouse import connect

    con = connect(database)
    try:
        con.execute(
            """
            create table if not exists experiment_decisions (
                run_id varchar, created_at varchar, experiment_id varchar, policy varchar,
                verdict varchar, decision varchar, reason varchar, reasons_json varchar,
                control_variant varchar, candidate_variant varchar, decision_json varchar
            )
            """
        )
        con.execute(
            "insert into experiment_decisions values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                report["run_id"],
                report["created_at"],
                report["experiment"].get("experiment_id", ""),
                decision["policy"],
                decision["verdict"],
                decision["decision"],
                decision["reason"],
                json.dumps(decision["reasons"]),
                decision["control_variant"],
                decision["candidate_variant"],
                dumps(decision),
            ],
        )
    finally:
        con.close()


def write_decision(
    decision: dict[str, Any], report: dict[str, Any], cfg: RunConfig, output: Path
) -> int:
    """The decision artifact (decision.v1 fields, plus decision.v2's policy, verdict and reasons),
    written after the report; the exit code says ship (0), hold (2) or fail / roll back (3)."""
    decision = dict(decision)
    decision["versions"] = {
        "binary_version": report["binary_version"],
        "git_commit": report.get("git_commit", ""),
    }
    validate_against(decision, "decision.v1")
    validate_against(decision, "decision.v2")
    write_atomic(decision_path(cfg, output), dumps(decision))
    verdict = decision["verdict"]
    if verdict == "ship":
        return EXIT_OK
    print(f"decision={verdict}: {decision['reason']}", file=sys.stderr)
    return EXIT_HOLD if verdict == "hold" else EXIT_FAIL


# Each file's latest load: a load that a later appended load extends (appends_to) is part of it
# (the later row's hash covers the earlier bytes too).
HELD_LOADS_SQL = """
select target_table, file_sha256 from raw.load_ledger as l
where not exists (select 1 from raw.load_ledger as a where a.appends_to = l.load_id)
"""


def load_sources(cfg: RunConfig, database: Path, log: StageLog | None = None) -> dict[str, Any]:
    """Load every configured source (JSONL files, postgres / duckdb queries); refuse a database
    that holds other sources' rows. `log` gets one line per source (and shows the loader's
    progress bar on a terminal)."""
    from recsys_eval.event_types import unmapped_counts, unmapped_warnings
    from recsys_eval.loader import ensure_raw_schema, load_file
    from recsys_eval.sql_sources import load_source
    from recsys_eval.tabular_sources import TABULAR_TYPES, load_tabular_source, plan_source
    from recsys_eval.warehouse import connect

    pii = cfg.eval.get("privacy", {}).get("pii_guard", "off")
    # Tables and files: their columns checked against the config before anything is written.
    plans = {
        src.name: plan_source(src, SOURCE_TABLES[src.name][0], cfg.dataset_file.parent)
        for src in cfg.sources()
        if src.type in TABULAR_TYPES
    }
    con = connect(database)
    try:
        ensure_raw_schema(con)
        results = {}
        for src in cfg.sources():
            schema, table = SOURCE_TABLES[src.name]
            if src.name in plans:  # recsys_eval.tabular_sources
                results[src.name] = load_tabular_source(
                    con, schema, src, table, pii, cfg.dataset_file.parent, plans[src.name]
                )
            elif src.type in ("postgres", "duckdb"):  # recsys_eval.sql_sources
                base = cfg.dataset_file.parent
                results[src.name] = load_source(con, schema, src, table, pii, base)
            else:
                assert src.path is not None  # only jsonl sources get this far
                results[src.name] = load_file(
                    con, schema, src.path, table=table, pii_guard=pii,
                    event_types=src.event_types, event_types_key=src.event_types_key,
                    progress=log is not None and log.live,
                )  # fmt: skip
            if log is not None:
                log.line(_load_line(src.name, results[src.name]))
        wanted = {(r.table, r.file_sha256) for r in results.values()}
        held = set(con.execute(HELD_LOADS_SQL).fetchall())
        extra = held - wanted
        if extra:
            raise RecsysEvalError(
                f"database {database} also holds {len(extra)} load(s) of other files; a run "
                "reads every row of its tables, so use a fresh --database per dataset"
            )
        # Outcome lines whose event_type the dataset's mapping lacks: quarantined, said here.
        unmapped = [
            warning
            for src in cfg.sources()
            if src.event_types is not None
            for warning in unmapped_warnings(
                src.name, src.event_types_key,
                SOURCE_TABLES[src.name][1], unmapped_counts(con, SOURCE_TABLES[src.name][1]), pii,
            )
        ]  # fmt: skip
        for warning in unmapped:
            print(f"warning: {warning}", file=sys.stderr)
    finally:
        con.close()
    return {
        "event_type_warnings": unmapped,
        "quarantined": sum(r.rows_quarantined for r in results.values()),
        "pii_guard": pii,
        "pii_findings": merge_counts(r.pii_findings for r in results.values()),
        "loads": results,
    }


def _load_line(name: str, res: Any) -> str:
    if res.skipped_duplicate:
        return f"loaded {name}: already in the database (load {res.load_id}), nothing new"
    return (
        f"loaded {name}: {res.lines_read:,} lines ({res.rows_quarantined:,} quarantined) in "
        f"{res.seconds:.1f} s"
    )


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
        "recsys_eval__offline_metrics": [
            {"name": m["name"], "k": m["k"]} for m in off.get("metrics", [])
        ],
    }
    if cfg.mode in ("experiment", "aa-check") and exp.get("experiment_id"):
        out["recsys_eval__experiment_id"] = exp["experiment_id"]
    if cfg.mode in ("experiment", "aa-check"):
        out.update(experiment_vars(exp))
        out.update(sequential_vars(exp))  # experiment.sequential, experiment.over_time
    split = off.get("time_split")
    if cfg.mode == "offline" and split:
        fmt = "%Y-%m-%d %H:%M:%S.%f"
        out["recsys_eval__test_window_start"] = parse_rfc3339(split["test"]["start"]).strftime(fmt)
        out["recsys_eval__test_window_end"] = parse_rfc3339(split["test"]["end"]).strftime(fmt)
        out["recsys_eval__outcomes_follow_exposure"] = split.get("outcomes_follow_exposure", False)
    if cfg.mode == "offline":
        relevance = off.get("relevance", {})
        out["recsys_eval__offline_dialect"] = off.get("dialect", "reference").strip().lower()
        out["recsys_eval__offline_relevance"] = {
            "grade": relevance.get("grade", "binary").strip().lower(),
            "gains": dict(relevance.get("gains", {})),
        }
        sig_conf = offline_significance.settings(off)[0]
        out["recsys_eval__offline_significance"] = offline_significance.dbt_var(sig_conf)
        boot = off["bootstrap"]
        out["recsys_eval__offline_bootstrap"] = {
            "enabled": boot["enabled"],
            "iterations": boot["iterations"],
            "seed": boot["seed"],
            "ci_level": boot["ci_level"],
        }
    return out


def build_marts(
    cfg: RunConfig,
    database: Path,
    work_dir: Path,
    parse_cache: bool = False,
    memory_limit: str | None = None,
    full_tests: bool = False,
    log: StageLog | None = None,
    paired: bool = False,
    spark: spark_target.SparkRun | None = None,
) -> dict[str, Any]:
    """Build the models the mode needs and read back what the report uses.

    `parse_cache`: keep dbt's parse state for the next run on the same database (--database);
    `memory_limit`: DuckDB's, for the models (--memory-limit); `full_tests`: also the unit tests
    and the model invariants (--full-tests). With `spark` (--target spark_thrift) the raw tables
    are staged on the cluster, the models build there and the marts the report reads are copied
    back into `database` first (recsys_eval.spark_target).
    """
    from recsys_eval.dbt_runner import build
    from recsys_eval.warehouse import connect

    select = ["+fct_data_quality", "+fct_data_quality_checks"]
    if cfg.mode == "offline":
        select.append("+fct_offline_metrics")
        if cfg.eval["offline"]["bootstrap"]["enabled"]:
            select.append("+fct_offline_metric_intervals")
        if paired:  # offline.significance with a baseline's per-request values
            select.append("+" + offline_significance.MART)
    if cfg.mode in ("experiment", "aa-check"):
        select += [f"+{name}" for name in EXPERIMENT_MARTS]
    plugin = plugin_for(cfg.mode)
    build_vars = dbt_vars(cfg)
    if plugin is not None:
        select += list(plugin.selectors)
        build_vars.update(plugin.dbt_vars(cfg))
    if _segmented(build_vars):
        select.append("+dim_segments")  # the segment keys' parts as columns, for analysts
    window = None
    if spark is not None:
        spark.stage(database)
        if log is not None:
            log.line(
                f"staged {spark.staged_tables} raw tables ({spark.staged_rows:,} rows) on Spark at "
                f"{spark.endpoint.host}:{spark.endpoint.port}"
            )
        build_vars.update(spark.dbt_vars())
        progress = spark_target.build_progress(log, spark.endpoint) if log is not None else None
    else:
        progress = BuildProgress(log) if log is not None else None
    nodes = build(
        database,
        build_vars,
        select,
        work_dir,
        parse_cache=parse_cache,
        memory_limit=memory_limit,
        full_tests=full_tests,
        progress=progress,
        target=spark_target.SPARK_TARGET if spark is not None else "duckdb",
    )
    if log is not None:
        log.clear()
    if spark is not None:
        relations = spark_target.relations_for(cfg, spark)
        spark.pull(database, relations)
        if cfg.mode in ("experiment", "aa-check"):
            window = spark.dataset_window()
        if log is not None:
            log.line(f"read back {len(relations)} tables ({spark.pulled_rows:,} rows) from Spark")
    con = connect(database, read_only=True)
    try:
        schema, staging = MARTS_SCHEMA, STAGING_SCHEMA
        _check_built(con, schema, "fct_data_quality")
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
        offline_rows: list[dict[str, Any]] = []
        if cfg.mode == "offline":
            cur = con.execute(
                f'select * from "{schema}".fct_offline_metrics order by scope, segment_key, '
                "metric_position"
            )
            cols = [d[0] for d in cur.description]
            offline_rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
            if cfg.eval["offline"]["bootstrap"]["enabled"]:
                intervals = {
                    (scope, segment, position): {"lower": lo, "upper": hi, "level": level}
                    for scope, segment, position, lo, hi, level in con.execute(
                        f"select scope, segment_key, metric_position, ci_lower, ci_upper, "
                        f'ci_level from "{schema}".fct_offline_metric_intervals'
                    ).fetchall()
                }
                for r in offline_rows:
                    key = (r["scope"], r["segment_key"], r["metric_position"])
                    if key in intervals:
                        r["ci"] = intervals[key]
        experiment_marts: dict[str, list[dict[str, Any]]] = {}
        if cfg.mode in ("experiment", "aa-check"):
            for name in EXPERIMENT_MARTS:
                # a fixed row order (a parallel build writes its rows in any order): by every column
                cur = con.execute(f'select * from "{model_schema(name)}".{name} order by all')
                cols = [d[0] for d in cur.description]
                experiment_marts[name] = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
            experiment_marts["dataset_window"] = [
                window
                if window is not None
                else dict(
                    zip(
                        ("start", "end"),
                        con.execute(
                            f"""
                            select min(ts), max(ts) from (
                                select exposed_at as ts from "{staging}".stg_recsys_eval__exposures
                                union all
                                select occurred_at from "{staging}".stg_recsys_eval__outcomes
                            ) as stamps
                            """
                        ).fetchone(),
                        strict=True,
                    )
                )
            ]
    finally:
        con.close()
    if len(rows) != 1:
        raise RecsysEvalError(f"internal error: fct_data_quality has {len(rows)} global rows")
    row = dict(zip(names, rows[0], strict=True))
    # After the read-only connection is closed: a plug-in may write marts of its own.
    row["plugin_output"] = (
        plugin.collect(
            ModeContext(cfg=cfg, database=database, schema=schema, staging_schema=staging)
        )
        if plugin is not None
        else None
    )
    row["offline_rows"] = offline_rows
    row["build_nodes"] = nodes
    row["build_progress"] = progress
    row["experiment_marts"] = experiment_marts
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


def _segmented(build_vars: dict[str, Any]) -> bool:
    """Whether the run configures slice keys for any analysis (dim_segments then has rows)."""
    ope = build_vars.get("recsys_eval__ope") or {}
    return bool(ope.get("slice_keys")) or any(
        value for name, value in build_vars.items() if name.endswith("slice_keys")
    )


def _check_built(con: Any, schema: str, name: str) -> None:
    found = con.execute(
        "select 1 from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchall()
    if not found:
        raise RecsysEvalError(f"internal error: dbt did not build {schema}.{name}")


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
    cfg: RunConfig,
    created: Any,
    row: dict[str, Any],
    loads: dict[str, Any],
    baseline: dict[str, Any] | None = None,
    artifacts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    with_assignments = cfg.mode in ("experiment", "aa-check")
    dq = with_checks(data_quality_section(row, with_assignments), row["checks"])
    cases = int(row["exposure_count"]) - int(row["duplicate_exposure_request_ids"])
    warnings = join_rate_warnings(dq, MIN_JOIN_RATE, with_assignments)
    warnings += [
        f"data_quality_{c['check_name']}: {c['failing_rows']} of {c['total_rows']}"
        for c in dq["checks"]
        if c["failing_rows"]
    ]
    if loads["quarantined"]:
        warnings.append(f"quarantined_rows: {loads['quarantined']}")
    if loads.get("pii_findings"):
        action = "quarantined" if loads["pii_guard"] == "reject" else "flagged"
        warnings.append(f"pii_guard: {pii_summary(loads['pii_findings'], action)}")
    executive: dict[str, Any] = {"decision": "not_configured", "highlights": []}
    report: dict[str, Any] = {
        "run_id": run_id(cfg.mode, created),
        "mode": cfg.mode,
        "created_at": format_rfc3339(created),
        "version": REPORT_FORMAT_VERSION,
        "binary_version": __version__,
        "effective_config": effective_config(cfg),
        "input_dataset_fingerprint": dataset_fingerprint(cfg),
        **({"artifacts": artifacts} if artifacts else {}),  # only with artifacts.manifest_uri
        "summary": {"cases_evaluated": cases, "executive": executive},
    }
    if cfg.mode == "offline":
        rows = row["offline_rows"]
        section = offline_section(
            [r for r in rows if r["scope"] == "global"],
            [r for r in rows if r["scope"] == "segment"],
        )
        # the cases the metrics average over (trec: fewer than kept), for the summary and advice
        report["summary"].update(case_counts([r for r in rows if r["scope"] == "global"], cases))
        cases = report["summary"]["cases_evaluated"]
        off = cfg.eval["offline"]
        dialect = off.get("dialect", "reference").strip().lower()
        if dialect != "reference":
            section["dialect"] = dialect
        relevance = off.get("relevance", {})
        if relevance.get("grade", "binary").strip().lower() != "binary":
            section["relevance"] = {
                "grade": relevance["grade"].strip().lower(),
                "gains": dict(relevance.get("gains", {})),
            }
        executive["highlights"] = highlights(section["metrics"])
        if baseline is not None and baseline["offline"].get("dialect", "reference") != dialect:
            warnings.append(
                "baseline_dialect_mismatch: the baseline was computed in the "
                f"{baseline['offline'].get('dialect', 'reference')} dialect, this run in {dialect}"
            )
        gates_cfg = cfg.eval["offline"].get("gates", [])
        if baseline is not None:
            section["baseline"] = compare_baseline(section["metrics"], baseline)
            executive["key_deltas"] = key_deltas(section["baseline"]["deltas"])
            if row.get("paired_tests") is not None:
                conf, defaulted = offline_significance.settings(off)
                section["significance"] = offline_significance.section(
                    row["paired_tests"], conf, defaulted, baseline.get("run_id", "")
                )
                warnings += offline_significance.warnings_for(section["significance"])
            if gates_cfg:
                # Gates are evaluated only against a baseline, as in the reference.
                report["gates"] = offline_significance.apply_to_gates(
                    evaluate_gates(gates_cfg, section["baseline"]["deltas"]),
                    gates_cfg,
                    section.get("significance"),
                )
                failed = [g for g in report["gates"] if not g["passed"]]
                executive["decision"] = "fail" if failed else "pass"
                if failed:
                    executive["gate_failures"] = failed
        elif gates_cfg:
            warnings.append("gates_not_evaluated: offline gates need --baseline")
        if baseline is None and offline_significance.settings(off)[0]["enabled"]:
            warnings.append(
                "significance_not_evaluated: offline.significance needs --baseline (this run's "
                "per-request values are kept beside the report for a later run's baseline)"
            )
        report["offline"] = section
    n_variants = None
    if cfg.mode in ("experiment", "aa-check"):
        exp = cfg.eval["experiment"]
        marts = row["experiment_marts"]
        if cfg.mode == "experiment":  # refuses a control that is likely the wrong way round
            control_notes = control_choice_warnings(marts["int_recsys_eval__experiment_arms"], exp)
            for note in control_notes:
                print(f"warning: {note}", file=sys.stderr)
            warnings += control_notes
        section = experiment_section(marts, exp)
        section.update(over_time_blocks(marts, exp))  # playbook: lift over time, sequential
        cases = sum(v["exposures"] for v in section["variants"])
        report["summary"]["cases_evaluated"] = cases
        n_variants = len(section["variants"])
        warnings += experiment_warnings(section)
        warnings += over_time_warnings(section)
        if cfg.mode == "experiment":
            executive["highlights"] = experiment_highlights(section)
            report["experiment"] = section
            if exp.get("decision", {}).get("enabled"):
                # the verdict is the warehouse's: the one row of fct_experiment_decision
                decision = decide(
                    marts["fct_experiment_decision"][0],
                    exp,
                    marts.get("fct_experiment_metric_tests"),
                )
                window = marts["dataset_window"][0]
                decision["dataset_window"] = {
                    k: format_rfc3339(v) if v is not None else "0001-01-01T00:00:00Z"
                    for k, v in window.items()
                }
                decision["versions"] = {"binary_version": __version__, "git_commit": ""}
                report["experiment"]["decision"] = decision
        else:
            aa = aa_check_section(
                marts["fct_experiment_significance"], exp["aa_check"]["thresholds"]
            )
            report["aa_check"] = aa
            if not aa["uniformish"]:
                warnings.append("aa_check_false_positives")
    plugged: ModeOutput | None = row.get("plugin_output")
    if plugged is not None:
        report[plugged.key] = plugged.section
        cases = plugged.cases_evaluated
        report["summary"]["cases_evaluated"] = cases
        executive["highlights"] = plugged.highlights
        if not plugged.include_data_quality:
            warnings = [w for w in warnings if w.startswith(("quarantined_rows", "pii_guard"))]
        warnings += plugged.warnings
    executive["next_steps"] = next_steps(
        decision=executive["decision"],
        mode=cfg.mode,
        has_baseline=baseline is not None,
        outcome_join_rate=dq["join_integrity"]["outcome_join_rate"],
        cases_evaluated=cases,
        n_variants=n_variants,
    )
    if plugged is None or plugged.include_data_quality:
        report["data_quality"] = dq
    commit = _git_commit()
    if commit:
        report["git_commit"] = commit
        decision = (report.get("experiment") or {}).get("decision")
        if isinstance(decision, dict):  # the report's copy of the decision artifact says it too
            decision["versions"]["git_commit"] = commit
    warnings += loads.get("event_type_warnings", [])  # kept in every mode
    if warnings:
        report["warnings"] = warnings
    return report
