"""How the CLI runs dbt. The parse cache: a second build on the same database with the same vars skips the
full parse; anything else in the key (vars, database) parses again; a cache that cannot be
written or is corrupt never fails a build. --memory-limit: validated, and in effect in DuckDB."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from conftest import CONFIGS

from recsys_eval import dbt_runner
from recsys_eval.cli import main
from recsys_eval.errors import EXIT_ERROR, EXIT_OK
from recsys_eval.experiment_report import EXPERIMENT_MARTS

SELECT = ["+stg_recsys_eval__exposure_items"]  # a seed and two staging views: instant
VARS = {"recsys_eval__source": "seeds"}
FULL_PARSE = "Unable to do partial parsing"


def _build(tmp_path: Path, name: str, database: Path, dbt_vars: dict) -> str:
    work = tmp_path / name
    work.mkdir()
    dbt_runner.build(database, dbt_vars, SELECT, work)
    return (work / "logs" / "dbt.log").read_text()


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("RECSYS_EVAL_CACHE_DIR", str(folder))
    monkeypatch.delenv("RECSYS_EVAL_PARSE_CACHE", raising=False)
    return folder / "dbt-parse"


def test_second_build_with_same_key_parses_partially(tmp_path: Path, cache_dir: Path) -> None:
    db = tmp_path / "run.duckdb"
    first = _build(tmp_path, "a", db, VARS)
    assert "saved manifest not found" in first  # cold: nothing cached yet
    entries = [p for p in cache_dir.iterdir() if p.is_dir()]
    assert len(entries) == 1
    assert (entries[0] / dbt_runner.PARTIAL_PARSE_FILE).stat().st_size > 100_000
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    second = _build(tmp_path, "b", db, VARS)
    assert FULL_PARSE not in second and "saved manifest not found" not in second
    # other vars or another database: another entry, parsed in full
    third = _build(tmp_path, "c", db, {**VARS, "recsys_eval__min_join_rate": 0.9})
    assert FULL_PARSE in third or "saved manifest not found" in third
    fourth = _build(tmp_path, "d", tmp_path / "other.duckdb", VARS)
    assert FULL_PARSE in fourth or "saved manifest not found" in fourth
    assert len([p for p in cache_dir.iterdir() if p.is_dir()]) == 3


def test_corrupt_or_unwritable_cache_never_fails_a_build(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "run.duckdb"
    entry = dbt_runner.parse_cache_entry(dbt_runner.project_dir(), db, VARS)
    assert entry is not None
    entry.mkdir(parents=True)
    (entry / dbt_runner.PARTIAL_PARSE_FILE).write_bytes(b"\x00not msgpack")
    log = _build(tmp_path, "a", db, VARS)  # dbt falls back to a full parse
    assert "OK created sql view model" in log
    # a cache path that is a file: nothing can be saved, the build still succeeds
    blocked = tmp_path / "blocked"
    blocked.write_text("x")
    monkeypatch.setenv("RECSYS_EVAL_CACHE_DIR", str(blocked))
    _build(tmp_path, "b", db, VARS)


def test_cache_off_and_default_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_EVAL_PARSE_CACHE", "0")
    assert dbt_runner.parse_cache_entry(tmp_path, tmp_path / "x.duckdb", VARS) is None
    monkeypatch.delenv("RECSYS_EVAL_PARSE_CACHE")
    monkeypatch.delenv("RECSYS_EVAL_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dbt_runner.parse_cache_dir() == tmp_path / "xdg" / "recsys-eval" / "dbt-parse"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert (
        dbt_runner.parse_cache_dir() == tmp_path / "home" / ".cache" / "recsys-eval" / "dbt-parse"
    )


# --- --memory-limit ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("6GB", "6GB"), ("512mib", "512MiB"), ("50%", "50%"), (" 1.5 gb ", "1.5GB")],
)
def test_memory_limit_accepted_forms(value: str, expected: str) -> None:
    assert dbt_runner.check_memory_limit(value) == expected


@pytest.mark.parametrize("value", ["0GB", "101%", "6", "-1GB", "6GB'; drop table x; --", "{{ x }}"])
def test_bad_memory_limit_is_refused_before_any_work(tmp_path: Path, value: str) -> None:
    out = tmp_path / "report.json"
    db = tmp_path / "run.duckdb"
    code = main(
        [
            "run",
            "--dataset", str(CONFIGS / "dataset.tiny.yaml"),
            "--config", str(CONFIGS / "offline.ci.yaml"),
            "--output", str(out),
            "--database", str(db),
            f"--memory-limit={value}",
        ]
    )  # fmt: skip
    assert code == EXIT_ERROR
    assert not out.exists() and not db.exists()


def test_memory_limit_reaches_duckdb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A limit far too small for the build makes DuckDB itself fail: the flag is in effect
    (the report is not written); a sane limit gives the golden run."""
    args = [
        "run",
        "--dataset", str(CONFIGS / "dataset.tiny.yaml"),
        "--config", str(CONFIGS / "offline.ci.yaml"),
    ]  # fmt: skip
    tiny = tmp_path / "tiny.json"
    assert main([*args, "--output", str(tiny), "--memory-limit", "1KB"]) == EXIT_ERROR
    assert not tiny.exists()
    assert "Out of Memory" in capsys.readouterr().err  # DuckDB's own error, through dbt
    ok = tmp_path / "ok.json"
    assert main([*args, "--output", str(ok), "--memory-limit", "1GB"]) == EXIT_OK
    assert ok.exists()


def test_run_tests_the_marts_and_full_tests_adds_the_invariants(
    tmp_path: Path, cache_dir: Path
) -> None:
    """By default a run leaves out dbt's unit tests and the tests tagged model_invariant (the
    staging / intermediate models' own logic, run by the seeds build in CI) and keeps the marts'
    tests; full_tests (--full-tests) runs them all."""
    # the selection of `recsys-eval run --mode experiment`
    select = ["+fct_data_quality", "+fct_data_quality_checks", *(f"+{m}" for m in EXPERIMENT_MARTS)]
    invariants = (
        "test.recsys_eval.unique_int_recsys_eval__requests_request_id.",
        "test.recsys_eval.assert_experiment_requests_one_per_assigned_request",
        "test.recsys_eval.not_null_stg_recsys_eval__exposures_exposure_row_id.",
    )

    def ids(name: str, full: bool) -> dict[str, str]:
        work = tmp_path / name
        work.mkdir()
        nodes = dbt_runner.build(tmp_path / f"{name}.duckdb", VARS, select, work, full_tests=full)
        return {n.unique_id: n.status for n in nodes}

    default = ids("default", False)
    assert not [u for u in default if u.startswith("unit_test.")]
    assert not [u for u in default if u.startswith(invariants)]
    mart_tests = [
        u for u in default if u.startswith("test.") and "fct_experiment_variant_metrics" in u
    ]
    assert mart_tests and all(default[u] == "pass" for u in mart_tests)
    assert "model.recsys_eval.int_recsys_eval__experiment_requests" in default

    full = ids("full", True)
    for prefix in invariants:
        assert [u for u in full if u.startswith(prefix) and full[u] == "pass"], prefix
    assert [u for u in full if u.startswith("unit_test.") and full[u] == "pass"]
    assert set(default) < set(full)
