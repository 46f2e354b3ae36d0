"""A repeated `recsys-eval run` replays the first build's compiled SQL without dbt (recsys_eval.plan).

Checked here: the replayed run writes the same report as the dbt build, byte for byte but for the
run's id and time, in every mode that can be replayed, and runs no dbt process; a build whose SQL
depends on the data (the simulated interleaving reads the longest list at compile time) is
replayed only while its guard (the compile-time query and its value) holds; a plan that someone
else could have written is ignored; the key changes with any project file dbt reads; the executor
reproduces dbt build's test outcomes, messages and skips.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
import yaml
from conftest import CONFIGS, ROOT

from recsys_eval import plan
from recsys_eval.cli import main

CASES = [
    ("offline", "dataset.tiny.yaml", "offline.demo.yaml"),
    ("experiment", "dataset.tiny.yaml", "experiment.demo.yaml"),
    ("ope", "dataset.tiny.yaml", "ope.demo.yaml"),
    ("interleaving-logged", "dataset.interleaving.logged.tiny.yaml", "interleaving.default.yaml"),
]


def run_cli(dataset: str, config: str, output: Path) -> dict:
    code = main(["run", "--dataset", str(CONFIGS / dataset), "--config", str(CONFIGS / config),
                 "--output", str(output)])  # fmt: skip
    assert code in (0, 2, 3), code  # ship / hold / rollback are verdicts, not errors
    report = json.loads(output.read_text())
    for key in ("run_id", "created_at", "timings"):
        report.pop(key)
    return report


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("RECSYS_EVAL_CACHE_DIR", str(cache))
    monkeypatch.chdir(ROOT)
    return cache / "plans"


def forbid_dbt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any dbt process fails the test (other commands, such as git, still run)."""
    original = subprocess.run

    def guarded(command, *args, **kwargs):
        if any("dbt" in str(part) for part in command):
            raise AssertionError(f"dbt was started: {command}")
        return original(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", guarded)


@pytest.mark.parametrize(("name", "dataset", "config"), CASES, ids=[c[0] for c in CASES])
def test_a_replayed_run_writes_the_report_of_the_dbt_build(
    name: str, dataset: str, config: str, tmp_path: Path, private_cache: Path, monkeypatch
) -> None:
    built = run_cli(dataset, config, tmp_path / "built.json")
    plans = list(private_cache.glob("*.json"))
    assert len(plans) == 1, plans
    forbid_dbt(monkeypatch)
    replayed = run_cli(dataset, config, tmp_path / "replayed.json")
    assert replayed == built
    # the plan holds every test of the build, not only the models
    steps = json.loads(plans[0].read_text())["steps"]
    assert {s["kind"] for s in steps} == {"model", "test"}


def test_a_data_dependent_model_replays_only_while_its_guard_holds(
    tmp_path: Path, private_cache: Path, monkeypatch
) -> None:
    """The simulated interleaving unrolls its walk to the longest list, read at compile time
    through recsys_eval.compile_time_value: the plan keeps the query and the value. Same data:
    replayed without dbt. Longer lists: the guard fails, the run builds with dbt, and the report
    is the one of a build from scratch."""
    config = "interleaving.default.yaml"
    built = run_cli("dataset.interleaving.tiny.yaml", config, tmp_path / "built.json")
    plans = list(private_cache.glob("*.json"))
    assert len(plans) == 1, plans
    assert "recsys_eval.plan_guard" in plans[0].read_text()

    started: list[list[str]] = []
    original = subprocess.run

    def counting(command, *args, **kwargs):
        if any("dbt" in str(part) for part in command):
            started.append(list(map(str, command)))
        return original(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", counting)
    assert run_cli("dataset.interleaving.tiny.yaml", config, tmp_path / "again.json") == built
    assert started == []

    # the same requests with one more item in r1's ranker A list: the walk needs one more step
    data = tmp_path / "data"
    data.mkdir()
    for name in ("ranker_a", "ranker_b", "outcomes_interleaving"):
        shutil.copy(ROOT / "examples/tiny" / f"{name}.jsonl", data / f"{name}.jsonl")
    lines = (data / "ranker_a.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    longest = max(len(json.loads(line)["items"]) for line in lines)
    first["items"] += [f"extra{i}" for i in range(longest + 1)]
    (data / "ranker_a.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    dataset = tmp_path / "dataset.yaml"
    doc = yaml.safe_load((CONFIGS / "dataset.interleaving.tiny.yaml").read_text())
    for source in doc["interleaving"].values():
        source["path"] = str(data / Path(source["path"]).name)
    dataset.write_text(yaml.safe_dump(doc))
    changed = run_cli(str(dataset), config, tmp_path / "changed.json")
    assert len(started) == 1  # the guard failed: dbt compiled the walk again
    monkeypatch.setattr(subprocess, "run", original)
    monkeypatch.setenv("RECSYS_EVAL_PLAN_CACHE", "0")
    assert changed == run_cli(str(dataset), config, tmp_path / "fresh.json")
    assert changed != built


def test_a_stale_guard_stops_the_replay(tmp_path: Path) -> None:
    con = duckdb.connect()
    con.execute("create table t as select 3 as n")
    marker = '/* recsys_eval.plan_guard {"sql": "select max(n) from t", "value": "3"} */'
    steps = [
        plan.Step(
            "model.x.m", "model", marker + "\nselect 1 as a", (), "table", "memory", "main", "m"
        )
    ]
    assert [r.status for r in plan.execute(con, steps)] == ["success"]
    con.execute("insert into t values (4)")
    with pytest.raises(plan.PlanStale, match="returned '4'"):
        plan.execute(con, steps)


def test_a_plan_others_can_write_is_ignored(tmp_path: Path, private_cache: Path) -> None:
    steps = [plan.Step("model.x.m", "model", "select 1 as a", (), "table", "memory", "main", "m")]
    plan.save(private_cache, "k", steps)
    assert plan.load(private_cache, "k") == steps
    (private_cache / "k.json").chmod(0o620)
    assert plan.load(private_cache, "k") is None
    (private_cache / "k.json").chmod(0o600)
    private_cache.chmod(0o777)
    assert plan.load(private_cache, "k") is None
    private_cache.chmod(0o700)
    assert plan.load(private_cache, "other-key") is None
    doc = json.loads((private_cache / "k.json").read_text())
    doc["key"] = "forged"
    (private_cache / "k.json").write_text(json.dumps(doc))
    assert plan.load(private_cache, "k") is None


def test_the_key_follows_every_file_dbt_reads(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "models", project / "models")
    shutil.copytree(ROOT / "macros", project / "macros")
    shutil.copytree(ROOT / "tests" / "dbt", project / "tests" / "dbt")
    shutil.copy(ROOT / "dbt_project.yml", project / "dbt_project.yml")
    before = plan.project_digest(project)
    assert plan.project_digest(project) == before
    macro = project / "macros" / "utils" / "config_var.sql"
    macro.write_text(macro.read_text() + "\n")
    assert plan.project_digest(project) != before
    # the folders hashed are the project's own *-paths
    cfg = yaml.safe_load((ROOT / "dbt_project.yml").read_text())
    paths = {
        p for key in ("model-paths", "macro-paths", "seed-paths", "test-paths") for p in cfg[key]
    }
    assert paths == set(plan.PROJECT_FOLDERS)


def test_the_executor_reproduces_dbt_builds_outcomes() -> None:
    con = duckdb.connect()
    con.execute("create schema raw")
    con.execute("create table raw.t as select * from range(5) as r(x)")
    m = "model.p.m"
    steps = [
        plan.Step(m, "model", "select x from memory.raw.t", (), "view", "memory", "main", "m"),
        plan.Step("test.p.ok", "test", "select * from memory.main.m where x < 0", (m,)),
        plan.Step(
            "test.p.warn",
            "test",
            "select * from memory.main.m where x > 2",
            (m,),
            severity="warn",
        ),
        plan.Step("test.p.bad", "test", "select * from memory.main.m where x = 4", (m,)),
        plan.Step(
            "model.p.child",
            "model",
            "select * from memory.main.m",
            (m,),
            "table",
            "memory",
            "main",
            "child",
        ),
    ]
    results = {r.unique_id: r for r in plan.execute(con, steps)}
    assert results[m].status == "success"
    assert results["test.p.ok"].status == "pass"
    assert results["test.p.warn"] == plan.StepResult(
        "test.p.warn", "warn", "Got 2 results, configured to warn if != 0"
    )
    assert results["test.p.bad"] == plan.StepResult(
        "test.p.bad", "fail", "Got 1 result, configured to fail if != 0"
    )
    assert results["model.p.child"].status == "skipped"  # its parent's test failed
    # a view replaced by a table and back, as dbt-duckdb does
    table = plan.Step(m, "model", "select 7 as x", (), "table", "memory", "main", "m")
    assert plan.execute(con, [table])[0].status == "success"
    assert con.execute("select table_type from information_schema.tables "
                       "where table_name = 'm'").fetchone() == ("BASE TABLE",)  # fmt: skip
    broken = plan.Step(m, "model", "select nope", (), "view", "memory", "main", "m")
    result = plan.execute(con, [broken])[0]
    assert result.status == "error" and "nope" in result.message


def test_plans_are_private_and_can_be_turned_off(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "plans"
    steps = [plan.Step("model.x.m", "model", "select 1", ())]
    plan.save(folder, "k", steps)
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert oct((folder / "k.json").stat().st_mode & 0o777) == "0o600"
    monkeypatch.setenv("RECSYS_EVAL_PLAN_CACHE", "0")
    assert plan.load(folder, "k") is None
    plan.save(folder, "k2", steps)
    assert not (folder / "k2.json").exists()


def test_independent_nodes_run_at_the_same_time_in_dbt_builds_order(monkeypatch) -> None:
    """The executor runs up to `threads` nodes at once, never one before what it waits for (its
    parents and, for a model, its parents' tests), and returns the serial run's results in the
    plan's order, skips included."""
    import threading
    import time

    steps = []
    for branch in "abc":
        m = f"model.p.{branch}"
        steps += [
            plan.Step(m, "model", "", (), "table", "memory", "main", branch),
            plan.Step(f"test.p.{branch}_ok", "test", "", (m,)),
            plan.Step(f"model.p.{branch}_child", "model", "", (m,), "table", "memory", "main", "x"),
        ]
    steps.append(plan.Step("test.p.b_bad", "test", "", ("model.p.b",)))
    steps = plan._ordered({s.unique_id: s for s in steps}, [s.unique_id for s in steps])
    waits = plan._waits({s.unique_id: s for s in steps})
    lock = threading.Lock()
    running: set[str] = set()
    finished: set[str] = set()
    most = 0

    def fake(con, step):
        nonlocal most
        with lock:
            assert waits[step.unique_id] <= finished, step.unique_id
            running.add(step.unique_id)
            most = max(most, len(running))
        time.sleep(0.05)
        with lock:
            running.discard(step.unique_id)
            finished.add(step.unique_id)
        status = "fail" if step.unique_id == "test.p.b_bad" else "pass"
        return plan.StepResult(step.unique_id, "success" if step.kind == "model" else status, "")

    monkeypatch.setattr(plan, "_run_step", fake)
    con = duckdb.connect()
    seen: list[tuple[int, int]] = []
    parallel = plan.execute(con, steps, lambda done, total: seen.append((done, total)), threads=3)
    assert most == 3
    assert seen == [(i, len(steps)) for i in range(len(steps) + 1)]
    finished.clear()
    serial = plan.execute(con, steps, threads=1)
    assert parallel == serial
    assert [r.unique_id for r in parallel] == [s.unique_id for s in steps]
    statuses = {r.unique_id: r.status for r in parallel}
    assert statuses["model.p.b_child"] == "skipped"  # its parent's test failed
    assert statuses["model.p.a_child"] == statuses["model.p.c_child"] == "success"
