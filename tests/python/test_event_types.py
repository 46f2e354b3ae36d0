"""Event types as teams name them (issue 17, item 3): `outcomes.event_types` maps source event
names onto the contract's click | conversion at load; names the mapping lacks are quarantined
with rule unmapped_event_type, counted per name and reported; outcome.v1 stays strict."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from conftest import CONFIGS, EXAMPLES

from recsys_eval import loader, schema_registry
from recsys_eval.cli import main
from recsys_eval.config import load_run_config
from recsys_eval.errors import EXIT_OK, ConfigError, RecsysEvalError
from recsys_eval.fast_accept import fast_accept_for
from recsys_eval.metadata import dataset_fingerprint

MAPPING = {"click": "click", "tap": "click", "purchase": "conversion", "checkout": "conversion"}
KEY = "outcomes.event_types"


def outcome(i: int, event: str, **extra) -> dict:
    return {
        "request_id": f"r{i}",
        "user_id": "u1",
        "item_id": f"i{i}",
        "event_type": event,
        "ts": "2025-01-01T00:00:00Z",
        **extra,
    }


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- config ------------------------------------------------------------------------------------
def dataset_yaml(tmp_path: Path, mapping: str, block: str = "") -> Path:
    for name in ("e.jsonl", "o.jsonl", "a.jsonl"):
        (tmp_path / name).write_text("")
    if block:
        text = (
            "interleaving:\n"
            "  exposures: {type: jsonl, path: e.jsonl}\n"
            f"  outcomes: {{type: jsonl, path: o.jsonl, event_types: {mapping}}}\n"
        )
    else:
        text = (
            "exposures: {type: jsonl, path: e.jsonl}\n"
            f"outcomes: {{type: jsonl, path: o.jsonl, event_types: {mapping}}}\n"
        )
    return write(tmp_path / "dataset.yaml", text)


def eval_yaml(tmp_path: Path, mode: str = "offline") -> Path:
    text = "mode: offline\noffline: {metrics: [{name: precision, k: 2}]}\n"
    if mode == "interleaving":
        text = "mode: interleaving\n"
    return write(tmp_path / "eval.yaml", text)


def test_config_maps_source_names_onto_contract_types(tmp_path: Path) -> None:
    ds = dataset_yaml(tmp_path, "{click: [click, tap], conversion: [purchase, checkout]}")
    cfg = load_run_config(ds, eval_yaml(tmp_path))
    (out,) = [s for s in cfg.sources() if s.name == "outcomes"]
    assert out.event_types == MAPPING
    assert out.event_types_key == KEY
    (exp,) = [s for s in cfg.sources() if s.name == "exposures"]
    assert exp.event_types is None
    # the mapping is part of the dataset's identity (not in the reference: only when set)
    strict = load_run_config(dataset_yaml(tmp_path, "~"), eval_yaml(tmp_path))
    assert [s.event_types for s in strict.sources()] == [None, None]
    assert dataset_fingerprint(cfg) != dataset_fingerprint(strict)
    assert cfg.dataset_as_written["outcomes"]["event_types"]["click"] == ["click", "tap"]


def test_config_interleaving_outcomes_take_a_mapping(tmp_path: Path) -> None:
    ds = dataset_yaml(tmp_path, "{click: [tap]}", block="interleaving")
    cfg = load_run_config(ds, eval_yaml(tmp_path, "interleaving"))
    (out,) = [s for s in cfg.sources() if s.name == "outcomes"]
    assert out.event_types == {"tap": "click"}
    assert out.event_types_key == "interleaving.outcomes.event_types"


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            "{click: [tap], view: [impression]}",
            r"dataset\.yaml: outcomes\.event_types\.view: unknown event type 'view': the "
            r"outcome contract \(outcome\.v1\) knows click, conversion",
        ),
        (
            "{click: [click, tap], conversion: [purchase, tap]}",
            r"dataset\.yaml: outcomes\.event_types\.conversion\[1\]: 'tap' is mapped twice "
            r"\(also at outcomes\.event_types\.click\[1\]\)",
        ),
        (
            "{click: [tap, tap]}",
            r"outcomes\.event_types\.click\[1\]: 'tap' is mapped twice "
            r"\(also at outcomes\.event_types\.click\[0\]\)",
        ),
        ("{click: [tap, '']}", r"outcomes\.event_types\.click\[1\]: .*non-empty string"),
        ("{click: [tap, 7]}", r"outcomes\.event_types\.click\[1\]: expected a string, got int 7"),
        ("{click: tap}", r"outcomes\.event_types\.click: expected a list, got string 'tap'"),
        ("{click: []}", r"outcomes\.event_types\.click: lists no event name"),
        ("{}", r"outcomes\.event_types: empty"),
        ("[tap]", r"outcomes\.event_types: expected a mapping, got a list"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, mapping: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_run_config(dataset_yaml(tmp_path, mapping), eval_yaml(tmp_path))


def test_config_event_types_only_on_outcomes(tmp_path: Path) -> None:
    (tmp_path / "e.jsonl").write_text("")
    ds = write(
        tmp_path / "dataset.yaml", "exposures: {type: jsonl, path: e.jsonl, event_types: {}}\n"
    )
    with pytest.raises(ConfigError, match=r"exposures\.event_types: unknown key"):
        load_run_config(ds, eval_yaml(tmp_path))


def test_config_event_types_refused_on_a_sql_source(tmp_path: Path) -> None:
    (tmp_path / "e.jsonl").write_text("")
    ds = write(
        tmp_path / "dataset.yaml",
        "exposures: {type: jsonl, path: e.jsonl}\n"
        "outcomes: {type: duckdb, dsn: x.duckdb, query: select 1, event_types: {click: [tap]}}\n",
    )
    with pytest.raises(ConfigError, match=r"outcomes\.event_types: applies to a jsonl source"):
        load_run_config(ds, eval_yaml(tmp_path))


def test_config_interleaving_errors_name_the_block(tmp_path: Path) -> None:
    ds = dataset_yaml(tmp_path, "{clicks: [tap]}", block="interleaving")
    with pytest.raises(ConfigError, match=r"interleaving\.outcomes\.event_types\.clicks: unknown"):
        load_run_config(ds, eval_yaml(tmp_path, "interleaving"))


# --- load ----------------------------------------------------------------------------------------
SOURCE_ROWS = [
    outcome(1, "click", value=1),
    outcome(2, "tap", value=1),
    outcome(3, "purchase", value=12.5),
    outcome(4, "view"),
    outcome(5, "checkout", value=3),
    outcome(6, "view", value=2),
    outcome(7, "view", ts="not a time"),  # unmapped and otherwise invalid: both errors kept
    outcome(8, "conversion"),  # a contract name the mapping does not list: unmapped too
    # as the canonical path parses it (spaces, key order): the slow path maps it as well
    '{"user_id": "u1", "request_id": "r9", "item_id": "i9", "ts": "2025-01-01T00:00:00Z", '
    '"event_type": "tap"}',
    outcome(10, 5),  # not a string: the schema's own errors, not counted as a name
]


def loaded(db: Path) -> tuple[list, list, list]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "select line_no, event_type, value from raw.outcomes order by line_no"
        ).fetchall()
        quarantine = con.execute(
            "select line_no, errors from raw.quarantine order by line_no"
        ).fetchall()
        ledger = con.execute(
            "select event_types, unmapped_event_types, rows_loaded, rows_quarantined "
            "from raw.load_ledger order by load_seq"
        ).fetchall()
    finally:
        con.close()
    return rows, [(n, json.loads(e)) for n, e in quarantine], ledger


@pytest.mark.parametrize("workers", [0, 2])
def test_load_maps_names_and_quarantines_unmapped(tmp_path: Path, workers: int) -> None:
    src = write_jsonl(tmp_path / "o.jsonl", SOURCE_ROWS)
    db = tmp_path / "w.duckdb"
    res = loader.load_file(
        db, "outcome.v1", src, event_types=MAPPING, event_types_key=KEY, workers=workers,
        chunk_bytes=200,  # several chunks: with workers=2 the worker processes get the mapping
    )  # fmt: skip
    assert res.unmapped_event_types == {"view": 3, "conversion": 1}
    assert (res.rows_loaded, res.rows_quarantined) == (5, 5)
    rows, quarantine, ledger = loaded(db)
    assert rows == [
        (1, "click", 1.0),
        (2, "click", 1.0),
        (3, "conversion", 12.5),
        (5, "conversion", 3.0),
        (9, "click", None),
    ]
    rules = {n: sorted(e["rule"] for e in errs) for n, errs in quarantine}
    assert rules == {
        4: ["unmapped_event_type"],
        6: ["unmapped_event_type"],
        7: ["format", "unmapped_event_type"],
        8: ["unmapped_event_type"],
        10: ["enum", "type"],
    }
    (msg,) = [e["message"] for e in dict(quarantine)[4]]
    assert msg.startswith(f"event_type 'view' is not in {KEY} (mapped: 'checkout', 'click'")
    assert ledger == [(json.dumps(MAPPING, sort_keys=True, separators=(",", ":")),
                       '{"conversion":1,"view":3}', 5, 5)]  # fmt: skip


def test_load_without_mapping_is_the_strict_contract(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "o.jsonl", [outcome(1, "click"), outcome(2, "tap")])
    db = tmp_path / "w.duckdb"
    res = loader.load_file(db, "outcome.v1", src)
    assert (res.rows_loaded, res.rows_quarantined, res.unmapped_event_types) == (1, 1, {})
    _, quarantine, ledger = loaded(db)
    assert [(n, [e["rule"] for e in errs]) for n, errs in quarantine] == [(2, ["enum"])]
    assert ledger == [(None, None, 1, 1)]


def test_same_file_with_another_mapping_is_refused_not_skipped(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "o.jsonl", SOURCE_ROWS)
    db = tmp_path / "w.duckdb"
    first = loader.load_file(db, "outcome.v1", src, event_types=MAPPING, event_types_key=KEY)
    again = loader.load_file(db, "outcome.v1", src, event_types=dict(MAPPING), event_types_key=KEY)
    assert again.skipped_duplicate and again.load_id == first.load_id
    assert again.unmapped_event_types == {"view": 3, "conversion": 1}  # the earlier load's
    other = {**MAPPING, "view": "click"}
    with pytest.raises(RecsysEvalError) as exc:
        loader.load_file(db, "outcome.v1", src, event_types=other, event_types_key=KEY)
    text = str(exc.value)
    assert f"was loaded into raw.outcomes by load {first.load_id} with event_types" in text
    assert f'"view":"click"}} ({KEY}): loading it again would hold its lines twice' in text
    assert "nothing was written" in text
    with pytest.raises(RecsysEvalError, match="this load has no event_types mapping"):
        loader.load_file(db, "outcome.v1", src)
    # an appended file with another mapping: refused too (two mappings in one table)
    with src.open("a") as fh:
        fh.write(json.dumps(outcome(11, "tap")) + "\n")
    with pytest.raises(RecsysEvalError, match="would mix two mappings in raw.outcomes"):
        loader.load_file(db, "outcome.v1", src, event_types=other, event_types_key=KEY)
    grown = loader.load_file(db, "outcome.v1", src, event_types=MAPPING, event_types_key=KEY)
    assert (grown.appends_to, grown.rows_loaded) == (first.load_id, 1)
    _, _, ledger = loaded(db)
    assert len(ledger) == 2


def test_load_refuses_a_mapping_for_other_schemas(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "e.jsonl", [])
    with pytest.raises(RecsysEvalError, match="applies to outcome.v1 only"):
        loader.load_file(tmp_path / "w.duckdb", "exposure.v1", src, event_types={"a": "click"})
    with pytest.raises(RecsysEvalError, match=r"'a' -> 'view'.*onto click or conversion"):
        loader.load_file(tmp_path / "w.duckdb", "outcome.v1", src, event_types={"a": "view"})


def test_fast_path_maps_and_refuses_unmapped() -> None:
    schema = schema_registry.resolve("outcome.v1").schema
    accept = fast_accept_for(schema, MAPPING)
    assert accept is not None
    line = json.dumps(outcome(1, "tap"), separators=(",", ":")).encode()
    assert json.loads(accept(line))["event_type"] == "click"
    assert accept(json.dumps(outcome(1, "view")).encode()) is None  # canonical path decides
    assert fast_accept_for(schema)(line) is None  # without a mapping: the strict contract
    with pytest.raises(ValueError, match="outcome.v1 only"):
        fast_accept_for(schema_registry.resolve("exposure.v1").schema, MAPPING)


# --- run: the same report numbers as the names rewritten by hand ---------------------------------
EVENT_NAMES = {"click": ["click", "tap"], "conversion": ["purchase", "checkout"]}


def team_outcomes(tmp_path: Path) -> tuple[Path, Path, int]:
    """ecommerce-mini's outcomes with the team's names (and 'view' lines), and the same data
    with the names rewritten by hand to the contract's (the 'view' lines left out)."""
    by_hand, team = [], []
    lines = (EXAMPLES / "ecommerce-mini" / "outcomes.jsonl").read_text().splitlines()
    for i, text in enumerate(lines):
        row = json.loads(text)
        by_hand.append(dict(row))
        row["event_type"] = EVENT_NAMES[row["event_type"]][i % 2]
        team.append(row)
        team.append({**row, "event_type": "view", "value": 0})
    return (
        write_jsonl(tmp_path / "outcomes.team.jsonl", team),
        write_jsonl(tmp_path / "outcomes.contract.jsonl", by_hand),
        len(lines),
    )


def run_report(tmp_path: Path, name: str, outcomes: Path, mapping: bool, config: Path) -> dict:
    mini = EXAMPLES / "ecommerce-mini"
    extra = ""
    if mapping:
        extra = ", event_types: {click: [click, tap], conversion: [purchase, checkout]}"
    ds = write(
        tmp_path / f"{name}.dataset.yaml",
        f"exposures: {{type: jsonl, path: {mini / 'exposures.jsonl'}}}\n"
        f"outcomes: {{type: jsonl, path: {outcomes}{extra}}}\n"
        f"assignments: {{type: jsonl, path: {mini / 'assignments.jsonl'}}}\n",
    )
    out = tmp_path / f"{name}.report.json"
    args = ["run", "--dataset", str(ds), "--config", str(config), "--output", str(out)]
    assert main(args) == EXIT_OK
    return json.loads(out.read_text())


SAME_FIELDS = ("offline", "experiment", "data_quality", "summary")


@pytest.mark.parametrize("mode", ["offline", "experiment"])
def test_run_mapped_names_give_the_hand_rewritten_report(tmp_path: Path, mode: str, capsys):
    team, by_hand, n = team_outcomes(tmp_path)
    if mode == "offline":
        config = CONFIGS / "offline.ecommerce-mini.yaml"
    else:
        config = write(
            tmp_path / "experiment.yaml",
            "mode: experiment\nexperiment:\n  experiment_id: exp_ecommerce_mini\n"
            "  control_variant: A\n  primary_metrics: [ctr, conversion_rate]\n",
        )
    mapped = run_report(tmp_path, "mapped", team, True, config)
    err = capsys.readouterr().err
    contract = run_report(tmp_path, "contract", by_hand, False, config)
    for key in SAME_FIELDS:
        assert mapped.get(key) == contract.get(key), key
    if mode == "offline":
        assert mapped["offline"]["metrics"]  # numbers, not two empty sections
    else:
        assert mapped["experiment"]["variants"]
    query = (
        "select line_no, raw_text from raw.quarantine where target_table = 'outcomes' and "
        "errors like '%unmapped_event_type%' and case when json_valid(raw_text) then "
        "raw_text->>'event_type' end = 'view'"
    )
    warning = (
        f"outcomes: {n:,} line(s) with event_type 'view' not in outcomes.event_types; they were "
        f"quarantined ({query})"
    )
    assert warning in mapped["warnings"]
    assert f"quarantined_rows: {n}" in mapped["warnings"]
    assert f"warning: {warning}" in err
    assert not any("event_type" in w for w in contract.get("warnings", []))
    assert mapped["effective_config"]["dataset"]["outcomes"]["event_types"] == EVENT_NAMES
    # the query of the warning finds exactly those lines
    db = tmp_path / "kept.duckdb"
    ds = tmp_path / "mapped.dataset.yaml"
    out = tmp_path / "kept.json"
    argv = ["run", "--dataset", str(ds), "--config", str(config), "--output", str(out)]
    if mode == "offline":
        assert main([*argv, "--database", str(db)]) == EXIT_OK
        con = duckdb.connect(str(db), read_only=True)
        try:
            assert len(con.execute(query).fetchall()) == n
        finally:
            con.close()
        # a kept database re-run: the file is skipped as loaded, the warning stays
        assert main([*argv, "--database", str(db)]) == EXIT_OK
        assert warning in json.loads(out.read_text())["warnings"]
