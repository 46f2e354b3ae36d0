"""No user string ever runs as a dbt Jinja template (issue 16, item 1).

dbt renders a string var as a template when a model reads it, so a config value such as
`{{ run_query('drop table raw.outcomes') }}` used to run inside the build. Every string the CLI
hands to dbt now goes through `recsys_eval.dbt_vars.encode` (decoded by the models'
`recsys_eval.config_var`), and data only ever reaches dbt as table rows.

The tests put payloads with side effects into every string of both YAML files and of the data
(ids, context keys and values, item ids, variant names, experiment ids, file and folder names),
run every mode, and assert that no payload ran: no table created, no file written, no environment
variable read (a canary value that must appear nowhere: reports, decisions, the database, the
parse cache, the console), and that each string was either refused with a message naming it or
carried as plain text.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import EXAMPLES

from recsys_eval import dbt_vars
from recsys_eval.cli import main
from recsys_eval.config import DATASET_SPEC, EVAL_SPEC, ListOf, MapOf, load_run_config
from recsys_eval.errors import EXIT_ERROR, ConfigError

CANARY_ENV = "RECSYS_EVAL_TEMPLATE_CANARY"
CANARY = "canary-" + secrets.token_hex(8)
# A folder or file name cannot hold '/': this payload has none.
PATH_PAYLOAD = (
    '{{ run_query("create table pwn_path as select 1") }}'
    "{{ env_var('" + CANARY_ENV + "') }}{# p #}"
)


def payload(tag: str, pwn_dir: Path) -> str:
    """One string with every kind of template: an expression that creates a table, a statement
    that writes a file, an environment read and a comment (which a render would drop)."""
    return (
        f'{{{{ run_query("create table pwn_{tag} as select 1") }}}}'
        f"{{% do run_query(\"copy (select 1 as x) to '{pwn_dir}/pwn_{tag}.csv'\") %}}"
        f"{{{{ env_var('{CANARY_ENV}') }}}}{{# {tag} #}}"
    )


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(CANARY_ENV, CANARY)
    return CANARY


# --- the encoding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "{{ 7 * 6 }}",
        "{% if true %}x{% endif %}",
        "{# c #}",
        "a'b\\c\n\t\r",
        "é☃𝄞 \u202e",
        "recsys_eval__text:000041",
        "${env:HOME}",
        "",
        "plain_id-1.2:3",
        "12",
        "1e5",
        "true",
    ],
)
def test_encoded_vars_hold_no_template_syntax_and_decode_to_the_same_text(value: str) -> None:
    encoded = dbt_vars.encode({"k": value, "nested": [{value: value}]})
    text = json.dumps(encoded)
    for marker in ("{{", "{%", "{#", "$"):
        assert marker not in text
    assert dbt_vars.decode(encoded) == {"k": value, "nested": [{value: value}]}
    if value == "plain_id-1.2:3":  # identifiers pass unchanged (readable compiled SQL)
        assert encoded["k"] == value
    if value in ("12", "1e5", "true"):  # never read back as a number or a boolean
        assert encoded["k"] == value or encoded["k"].startswith(dbt_vars.PREFIX)


# --- every string of both YAML files ---------------------------------------------------------


def string_leaves(spec: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place a string can sit in a config spec: values, list items and mapping keys."""
    if isinstance(spec, dict):
        for key, sub in spec.items():
            yield from string_leaves(sub, (*path, key))
    elif isinstance(spec, ListOf):
        yield from string_leaves(spec.item, (*path, 0))
    elif isinstance(spec, MapOf):
        yield (*path, MapOf)
    elif spec is str:
        yield path


def nest(path: tuple[Any, ...], value: str) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if head == 0:
        return [nest(rest, value)]
    if head is MapOf:
        return {value: 1.0}
    return {head: nest(rest, value)}


def dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        if part == 0:
            out += "[0]"
        elif part is not MapOf:
            out += ("." if out else "") + part
    return out


def lookup(tree: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        if part is MapOf:
            return next(iter(tree))
        tree = tree[part]
    return tree


EVAL_LEAVES = [p for p in string_leaves(EVAL_SPEC) if p != ("mode",)]
DATASET_LEAVES = list(string_leaves(DATASET_SPEC))


@pytest.mark.parametrize("path", EVAL_LEAVES, ids=dotted)
def test_every_eval_string_is_refused_by_name_or_carried_as_plain_text(
    tmp_path: Path, path: tuple[Any, ...]
) -> None:
    value = payload("eval", tmp_path)
    section = path[0] if path[0] in ("experiment", "ope", "interleaving") else "offline"
    cfg = nest(path, value)
    cfg["mode"] = section
    cfg.setdefault("offline", {}).setdefault("metrics", [{"name": "ndcg", "k": 3}])
    eval_file = tmp_path / "eval.yaml"
    eval_file.write_text(json.dumps(cfg))
    dataset = "dataset.interleaving.tiny.yaml" if section == "interleaving" else "dataset.tiny.yaml"
    try:
        loaded = load_run_config(EXAMPLES.parent / "configs" / dataset, eval_file)
    except ConfigError as exc:
        message = str(exc)
        assert dotted(path).split("[")[0].split(".")[0] in message, message
        assert "\n" not in message.strip()
        return
    carried = lookup(loaded.eval, path)  # as written (names may be lower-cased), never rendered
    assert carried.casefold() == value.casefold()


@pytest.mark.parametrize("path", DATASET_LEAVES, ids=dotted)
def test_every_dataset_string_is_refused_by_name_or_carried_as_plain_text(
    tmp_path: Path, path: tuple[Any, ...]
) -> None:
    folder = tmp_path / PATH_PAYLOAD
    folder.mkdir()
    data = folder / "exposures.jsonl"
    data.write_text((EXAMPLES / "tiny" / "exposures.jsonl").read_text())
    value = str(data) if path[-1] == "path" else payload("dataset", tmp_path)
    block = nest(path, value)
    leaf = lookup(block, path[:-1])
    if path[-1] != "type":
        leaf["type"] = "jsonl"
    if path[-1] != "path":
        leaf["path"] = str(data)
    dataset_file = tmp_path / "dataset.yaml"
    dataset_file.write_text(json.dumps(block))
    eval_file = tmp_path / "eval.yaml"
    mode = "interleaving" if path[0] == "interleaving" else "offline"
    eval_file.write_text(
        json.dumps({"mode": mode, "offline": {"metrics": [{"name": "ndcg", "k": 3}]}})
    )
    try:
        loaded = load_run_config(dataset_file, eval_file)
    except ConfigError as exc:
        message = str(exc)
        assert str(dataset_file) in message or dotted(path).split(".")[0] in message, message
        return
    assert lookup(loaded.dataset_as_written, path) == value


# --- every mode, end to end --------------------------------------------------------------------


def hostile_id(prefix: str, value: str) -> str:
    return prefix + value


def write_hostile_data(folder: Path, p: str) -> dict[str, Path]:
    """The tiny dataset with a payload in every id, context key and value, item id, variant and
    experiment id; the same mapping in every file, so the joins still hold."""
    folder.mkdir(parents=True, exist_ok=True)

    def ids(doc: dict[str, Any]) -> dict[str, Any]:
        for key in ("request_id", "user_id", "item_id", "experiment_id", "variant"):
            if key in doc:
                doc[key] = p + str(doc[key])
        if isinstance(doc.get("items"), list):
            doc["items"] = [
                {**item, "item_id": p + item["item_id"]} if isinstance(item, dict) else p + item
                for item in doc["items"]
            ]
        if isinstance(doc.get("context"), dict):
            ctx = {k: p + v for k, v in doc["context"].items()}
            if "pre_period_ctr" in ctx:  # the CUPED covariate must stay a number
                ctx[p + "pre"] = doc["context"]["pre_period_ctr"]
                del ctx["pre_period_ctr"]
            ctx[p] = p
            doc["context"] = ctx
        return doc

    out = {}
    for name in (
        "exposures", "outcomes", "assignments", "ranker_a", "ranker_b",
        "outcomes_interleaving", "interleaved_exposures",
    ):  # fmt: skip
        lines = (EXAMPLES / "tiny" / f"{name}.jsonl").read_text().splitlines()
        docs = [ids(json.loads(line)) for line in lines if line.strip()]
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
        out[name] = path
    return out


def eval_config(mode: str, p: str, out_dir: Path) -> dict[str, Any]:
    # artifacts.* strings are covered by the sweep above (a manifest_uri is read: refused there)
    cfg: dict[str, Any] = {"mode": mode, "scale": {"stream": {"temp_dir": p}}}
    if mode == "offline":
        cfg["offline"] = {
            "metrics": [{"name": "ndcg", "k": 3}, {"name": "diversity", "k": 3}],
            "slice_keys": ["tenant"],
            "gates": [{"metric": p, "max_drop": 0.1}],
            "history_dir": str(out_dir / "history"),
        }
    elif mode in ("experiment", "aa-check"):
        cfg["experiment"] = {
            "control_variant": p + "A",
            "primary_metrics": ["ctr", p],
            "slice_keys": ["tenant"],
            "cuped": {"enabled": True, "covariate_key": p + "pre"},
            "power": {"metric": p, "baseline_rate": 0.1, "mde": 0.01, "daily_samples": 1000},
            "multiple_comparisons": {"method": p},
            "srm": {"enabled": True, "min_sample": 1, "expected": {p + "A": 0.5, p + "B": 0.5}},
            "decision": {
                "enabled": mode == "experiment",
                "candidate_variant": p + "B",
                "output_path": str(out_dir / (PATH_PAYLOAD + ".decision.json")),
                "primary_thresholds": {p: 0.01},
            },
            "aa_check": {"enabled": mode == "aa-check"},
        }
    elif mode == "ope":
        cfg["ope"] = {"position_discount": p, "slice_keys": ["surface"], "enable_dr": True}
    elif mode == "interleaving":
        cfg["interleaving"] = {"algorithm": p, "slice_keys": ["tenant"]}
    return cfg


def dataset_config(mode: str, files: dict[str, Path]) -> dict[str, Any]:
    def src(name: str) -> dict[str, str]:
        return {"type": "jsonl", "path": str(files[name])}

    if mode == "interleaving":
        return {
            "interleaving": {
                "ranker_a": src("ranker_a"),
                "ranker_b": src("ranker_b"),
                "outcomes": src("outcomes_interleaving"),
            }
        }
    return {name: src(name) for name in ("exposures", "outcomes", "assignments")}


def text_of_every_row(database: Path) -> str:
    con = duckdb.connect(str(database), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables"
        ).fetchall()
        parts = [f"{schema}.{name}" for schema, name in tables]
        for schema, name in tables:
            rows = con.execute(
                f'select cast(r as varchar) from "{schema}"."{name}" as r'
            ).fetchall()
            parts += [row[0] for row in rows]
        return "\n".join(parts)
    finally:
        con.close()


def every_file_text(folder: Path) -> str:
    return "\n".join(
        f.read_bytes().decode("utf-8", "replace") for f in folder.rglob("*") if f.is_file()
    )


@pytest.mark.parametrize("mode", ["offline", "experiment", "aa-check", "ope", "interleaving"])
def test_no_payload_runs_in_any_mode(
    tmp_path: Path, mode: str, canary: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pwn_dir = tmp_path / "pwn"
    pwn_dir.mkdir()
    p = payload("x", pwn_dir)
    root = tmp_path / PATH_PAYLOAD  # every path the run touches holds a payload too
    files = write_hostile_data(root / "data", p)
    out_dir = root / "out"
    out_dir.mkdir()
    dataset_file = root / "dataset.yaml"
    dataset_file.write_text(json.dumps(dataset_config(mode, files)))
    eval_file = root / "eval.yaml"
    eval_file.write_text(json.dumps(eval_config(mode, p, out_dir)))
    # dbt-duckdb cannot open a database path holding ' # ? (test below): the only path kept apart
    database = tmp_path / "db" / "run.duckdb"
    database.parent.mkdir()
    report = out_dir / "report.json"

    code = main(["run", "--dataset", str(dataset_file), "--config", str(eval_file),
                 "--output", str(report), "--database", str(database)])  # fmt: skip
    console = capsys.readouterr()
    assert code != EXIT_ERROR, console.err
    assert main(["render", "--report", str(report), "--format", "html",
                 "--output", str(out_dir / "report.html")]) == 0  # fmt: skip
    assert main(["render", "--report", str(report), "--format", "md",
                 "--output", str(out_dir / "report.md")]) == 0  # fmt: skip

    # nothing ran: no table, no file, no environment read
    stored = text_of_every_row(database)
    assert "pwn_x" not in {line.split(".")[-1] for line in stored.splitlines()[:200]}
    assert "pwn_path" not in {line.split(".")[-1] for line in stored.splitlines()[:200]}
    assert list(pwn_dir.iterdir()) == []
    cache = Path(__import__("os").environ["RECSYS_EVAL_CACHE_DIR"])
    for where, text in [
        ("the database", stored),
        ("the outputs", every_file_text(out_dir)),
        ("the parse cache", every_file_text(cache)),
        ("the console", console.out + console.err),
    ]:
        assert canary not in text, f"the environment canary leaked into {where}"

    # ... and the payloads were carried as plain text
    doc = json.loads(report.read_text())
    assert doc["effective_config"]["eval"]["scale"]["stream"]["temp_dir"] == p
    carried = [
        text for text in strings_in({k: v for k, v in doc.items() if k != "effective_config"})
    ]
    if mode == "aa-check":  # the A/A section holds counts only: read the variants mart
        con = duckdb.connect(str(database), read_only=True)
        try:
            (schema,) = con.execute(
                "select table_schema from information_schema.tables "
                "where table_name = 'fct_experiment_variant_metrics'"
            ).fetchone()
            carried = [v for (v,) in con.execute(
                f'select distinct variant from "{schema}".fct_experiment_variant_metrics'
            ).fetchall()]  # fmt: skip
        finally:
            con.close()
        assert set(carried) == {p + "A", p + "B"}
    assert any(p in text for text in carried), "no data value came back as plain text"
    if mode == "experiment":
        section = doc["experiment"]
        assert {v["variant"] for v in section["variants"]} == {p + "A", p + "B"}
        assert section["decision"]["control_variant"] == p + "A"
        assert section["decision"]["candidate_variant"] == p + "B"
        assert section["cuped"]["covariate_key"] == p + "pre"
        assert (out_dir / (PATH_PAYLOAD + ".decision.json")).is_file()


def strings_in(tree: Any) -> Iterator[str]:
    if isinstance(tree, str):
        yield tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield str(key)
            yield from strings_in(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from strings_in(value)


def test_a_database_path_dbt_duckdb_would_misread_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / PATH_PAYLOAD
    folder.mkdir()
    report = tmp_path / "r.json"
    code = main(["run", "--dataset", str(EXAMPLES.parent / "configs" / "dataset.tiny.yaml"),
                 "--config", str(EXAMPLES.parent / "configs" / "offline.default.yaml"),
                 "--output", str(report), "--database", str(folder / "run.duckdb")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == EXIT_ERROR
    assert "dbt-duckdb cannot open a path holding" in err and "'#'" in err, err
    assert not report.exists() and list(folder.iterdir()) == []
