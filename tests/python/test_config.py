"""Strict YAML loading: every reference config loads; bad keys, types and values are named."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CONFIGS

from recsys_eval.config import apply_defaults, load_run_config, read_yaml
from recsys_eval.errors import ConfigError

DATASET = CONFIGS / "dataset.tiny.yaml"


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "name,mode",
    [
        ("offline.ci.yaml", "offline"),
        ("offline.default.yaml", "offline"),
        ("offline.signals.yaml", "offline"),
        ("offline.ecommerce-mini.yaml", "offline"),
        ("experiment.default.yaml", "experiment"),
        ("ope.default.yaml", "ope"),
    ],
)
def test_every_shipped_config_loads(name: str, mode: str, monkeypatch) -> None:
    monkeypatch.chdir(CONFIGS.parent)
    cfg = load_run_config(DATASET, CONFIGS / name)
    assert cfg.mode == mode


def test_interleaving_config_loads(monkeypatch) -> None:
    monkeypatch.chdir(CONFIGS.parent)
    cfg = load_run_config(
        CONFIGS / "dataset.interleaving.tiny.yaml", CONFIGS / "interleaving.default.yaml"
    )
    assert [s.name for s in cfg.sources()] == ["ranker_a", "ranker_b", "outcomes"]
    assert cfg.eval["interleaving"] == {"algorithm": "team_draft", "seed": 42, "max_results": 10}


def test_unknown_key_is_named_with_its_path(tmp_path: Path) -> None:
    cfg = write(tmp_path, "mode: offline\noffline:\n  metrics:\n    - name: ndcg\n      kk: 3\n")
    with pytest.raises(
        ConfigError, match=r"offline\.metrics\[0\]\.kk: unknown key \(known: k, name\)"
    ):
        load_run_config(DATASET, cfg)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    cfg = write(tmp_path, "mode: offline\nofline: {}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: ofline: unknown key"):
        load_run_config(DATASET, cfg)


def test_unknown_dataset_key(tmp_path: Path) -> None:
    ds = write(tmp_path, "exposures:\n  type: jsonl\n  path: x\n  pth: y\n", "d.yaml")
    with pytest.raises(ConfigError, match=r"d\.yaml: exposures\.pth: unknown key"):
        load_run_config(ds, CONFIGS / "offline.ci.yaml")


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "mode: offline\noffline:\n  metrics:\n    - name: precision\n      k: two\n",
            r"k: expected an integer, got string 'two'",
        ),
        (
            "mode: offline\noffline:\n  bootstrap:\n    enabled: yes please\n",
            r"enabled: expected true or false",
        ),
        ("mode: offline\noffline:\n  slice_keys: tenant\n", r"slice_keys: expected a list"),
        (
            "mode: offline\noffline:\n  gates:\n    - metric: p@2\n      max_drop: .nan\n",
            r"finite number",
        ),
        ("mode: offline\nmode: experiment\n", r"duplicate key 'mode'"),
        ("mode: offline\n---\nmode: ope\n", r"only one YAML document"),
        ("- a\n- b\n", r"expected a mapping at the top level"),
        ("mode: [offline\n", r"not valid YAML"),
    ],
)
def test_bad_values_are_explained(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_run_config(DATASET, write(tmp_path, text))


def test_int_is_accepted_where_a_number_is_expected(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        "mode: offline\noffline:\n  metrics: [{name: precision, k: 2}]\n  gates: [{metric: p@2, max_drop: 0}]\n",
    )
    loaded = load_run_config(DATASET, cfg)
    assert loaded.eval["offline"]["gates"] == [{"metric": "p@2", "max_drop": 0.0}]


def test_mode_flag_wins_and_mode_is_required(tmp_path: Path) -> None:
    cfg = write(tmp_path, "offline:\n  metrics: [{name: precision, k: 2}]\n")
    with pytest.raises(ConfigError, match="mode must be set in config or --mode"):
        load_run_config(DATASET, cfg)
    assert load_run_config(DATASET, cfg, mode_flag="Offline").mode == "offline"
    with pytest.raises(ConfigError, match="unsupported mode 'batch'"):
        load_run_config(DATASET, cfg, mode_flag="batch")


def test_offline_needs_metrics_with_positive_k(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="offline.metrics is required"):
        load_run_config(DATASET, write(tmp_path, "mode: offline\n"))
    with pytest.raises(ConfigError, match=r"ndcg@K requires k > 0"):
        load_run_config(
            DATASET, write(tmp_path, "mode: offline\noffline:\n  metrics: [{name: ndcg, k: 0}]\n")
        )


@pytest.mark.parametrize(
    "key",
    ["tenant'); drop table raw.exposures; --", "a b", "x" * 65, "", "ten|ant", "k=v"],
)
def test_slice_keys_cannot_carry_sql(tmp_path: Path, key: str) -> None:
    cfg = write(
        tmp_path,
        f"mode: offline\noffline:\n  metrics: [{{name: precision, k: 2}}]\n  slice_keys: [{key!r}]\n",
    )
    with pytest.raises(ConfigError, match=r"slice_keys\[0\]: .* is not a valid context key"):
        load_run_config(DATASET, cfg)


def test_experiment_id_cannot_carry_sql(tmp_path: Path) -> None:
    cfg = write(tmp_path, "mode: experiment\nexperiment:\n  experiment_id: \"x' or '1'='1\"\n")
    with pytest.raises(ConfigError, match="experiment_id: .* is not a valid identifier"):
        load_run_config(DATASET, cfg)


def test_missing_input_file_is_named(tmp_path: Path) -> None:
    ds = write(
        tmp_path,
        "exposures: {type: jsonl, path: nope.jsonl}\noutcomes: {type: jsonl, path: nope2.jsonl}\n",
        "d.yaml",
    )
    with pytest.raises(ConfigError, match=r"exposures\.path: file not found: nope\.jsonl"):
        load_run_config(ds, CONFIGS / "offline.ci.yaml")


def test_sql_sources_are_accepted_with_dsn_and_query(tmp_path: Path) -> None:
    """postgres / duckdb sources load through recsys_eval.sql_sources (test_sql_sources.py)."""
    outcomes = f"outcomes: {{type: jsonl, path: {CONFIGS.parent}/examples/tiny/outcomes.jsonl}}\n"
    ds = write(
        tmp_path,
        "exposures: {type: Postgres, dsn: 'postgres://u:p@h/db', query: select 1}\n" + outcomes,
        "d.yaml",
    )
    (src, _) = load_run_config(ds, CONFIGS / "offline.ci.yaml").sources()
    assert (src.type, src.dsn, src.query) == ("postgres", "postgres://u:p@h/db", "select 1")
    for missing in ("dsn: x.duckdb", "query: select 1", "dsn: x.duckdb, query: '  '"):
        ds.write_text(f"exposures: {{type: duckdb, {missing}}}\n" + outcomes)
        with pytest.raises(ConfigError, match="exposures: a duckdb source needs dsn and query"):
            load_run_config(ds, CONFIGS / "offline.ci.yaml")


def test_experiment_mode_requires_assignments(tmp_path: Path) -> None:
    ds = write(
        tmp_path,
        f"exposures: {{type: jsonl, path: {CONFIGS.parent}/examples/tiny/exposures.jsonl}}\noutcomes: {{type: jsonl, path: {CONFIGS.parent}/examples/tiny/outcomes.jsonl}}\n",
        "d.yaml",
    )
    with pytest.raises(ConfigError, match="assignments: required for this mode"):
        load_run_config(ds, CONFIGS / "experiment.default.yaml")


def test_time_split_is_validated(tmp_path: Path) -> None:
    base = "mode: offline\noffline:\n  metrics: [{name: precision, k: 2}]\n  time_split:\n"
    bad_order = (
        base
        + "    train: {start: '2025-01-02T00:00:00Z', end: '2025-01-01T00:00:00Z'}\n    test: {start: '2025-01-03T00:00:00Z', end: '2025-01-04T00:00:00Z'}\n"
    )
    with pytest.raises(ConfigError, match="time_split.train: start is after end"):
        load_run_config(DATASET, write(tmp_path, bad_order))
    overlap = (
        base
        + "    train: {start: '2025-01-01T00:00:00Z', end: '2025-01-05T00:00:00Z'}\n    test: {start: '2025-01-03T00:00:00Z', end: '2025-01-04T00:00:00Z'}\n"
    )
    with pytest.raises(ConfigError, match="train.end is after test.start"):
        load_run_config(DATASET, write(tmp_path, overlap))
    not_a_time = (
        base
        + "    train: {start: yesterday, end: '2025-01-05T00:00:00Z'}\n    test: {start: '2025-01-06T00:00:00Z', end: '2025-01-07T00:00:00Z'}\n"
    )
    with pytest.raises(ConfigError, match="train.start: not an RFC 3339 timestamp"):
        load_run_config(DATASET, write(tmp_path, not_a_time))


def test_defaults_follow_the_reference() -> None:
    cfg = apply_defaults({"offline": {"bootstrap": {"seed": 0, "ci_level": 1.5, "iterations": -1}}})
    assert cfg["offline"]["bootstrap"] == {
        "seed": 42,
        "ci_level": 0.95,
        "iterations": 200,
        "enabled": False,
    }
    assert cfg["experiment"]["multiple_comparisons"] == {"method": "fdr_bh", "alpha": 0.05}
    assert (
        cfg["experiment"]["srm"]["alpha"] == 0.001 and cfg["experiment"]["srm"]["min_sample"] == 100
    )
    assert cfg["experiment"]["aa_check"]["thresholds"] == [0.05, 0.01, 0.001]
    assert cfg["ope"]["min_propensity"] == 1e-6 and cfg["ope"]["unit"] == "request"
    assert cfg["interleaving"]["seed"] == 42 and cfg["scale"]["mode"] == "memory"


def test_read_yaml_of_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        read_yaml(tmp_path / "nope.yaml")


def test_unknown_metric_names_the_known_ones(tmp_path: Path) -> None:
    cfg = write(
        tmp_path, "mode: offline\noffline:\n  metrics: [{name: auc, k: 2}, {name: NDCG@k, k: 3}]\n"
    )
    with pytest.raises(
        ConfigError, match=r"metrics\[0\]\.name: unknown metric: auc \(known: precision, recall"
    ):
        load_run_config(DATASET, cfg)
    ok = write(
        tmp_path,
        "mode: offline\noffline:\n  metrics: [{name: NDCG@k, k: 3}, {name: MRR, k: 1}]\n",
        "ok.yaml",
    )
    assert load_run_config(DATASET, ok).eval["offline"]["metrics"][0] == {"name": "NDCG@k", "k": 3}
