"""schema_registry.resolve: names inside schemas/, paths as given, no escaping the folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys_eval import paths, schema_registry
from recsys_eval.errors import RecsysEvalError

KNOWN = (
    "assignment.v1, decision.v1, decision.v2, exposure.v1, interaction.v1, interleaved_exposure.v1, "
    "manifest.v1, outcome.v1, ranklist.v1, report.v1, report.v2, serving_exposure.v1"
)


def test_name_resolves_inside_schemas_dir() -> None:
    ref = schema_registry.resolve("exposure.v1")
    assert ref.name == "exposure.v1"
    assert ref.path == (paths.schemas_dir() / "exposure.v1.json").resolve()
    assert ref.schema["$id"] == "exposure.v1.json"
    assert ref.schema["required"] == ["request_id", "user_id", "ts", "items"]


def test_name_with_json_suffix_is_the_same_schema() -> None:
    assert (
        schema_registry.resolve("outcome.v1.json").path
        == schema_registry.resolve("outcome.v1").path
    )


def test_known_schema_names() -> None:
    assert ", ".join(schema_registry.known_schema_names()) == KNOWN


@pytest.mark.parametrize("name", ["nope.v1", "exposure", "exposure.v2", "Exposure.v1", "x"])
def test_unknown_name_lists_known_schemas(name: str) -> None:
    with pytest.raises(RecsysEvalError) as info:
        schema_registry.resolve(name)
    assert str(info.value) == f"unknown schema {name!r}; known schemas: {KNOWN}"


@pytest.mark.parametrize("name", ["..", "....v1", "..exposure.v1", "exposure.v1..", ".v1", ""])
def test_names_that_could_traverse_are_rejected(name: str) -> None:
    with pytest.raises(RecsysEvalError, match="unknown schema"):
        schema_registry.resolve(name)


@pytest.mark.parametrize(
    "value", ["../schemas/nope.v1.json", "schemas/../../etc/passwd", "exposure.v1/../x"]
)
def test_values_with_a_slash_are_paths_and_must_exist(value: str) -> None:
    with pytest.raises(RecsysEvalError, match="schema file not found"):
        schema_registry.resolve(value)


def test_symlink_out_of_the_schemas_dir_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "schemas").mkdir(parents=True)
    outside = tmp_path / "secret.json"
    outside.write_text('{"type": "object"}')
    (project / "schemas" / "evil.v1.json").symlink_to(outside)
    (project / "schemas" / "good.v1.json").write_text('{"type": "string"}')
    monkeypatch.setenv("RECSYS_EVAL_PROJECT_DIR", str(project))
    assert schema_registry.resolve("good.v1").schema == {"type": "string"}
    with pytest.raises(RecsysEvalError) as info:
        schema_registry.resolve("evil.v1")
    assert str(info.value) == "unknown schema 'evil.v1'; known schemas: evil.v1, good.v1"


def test_path_is_read_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    schema = {"type": "object", "required": ["a"]}
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(schema))
    ref = schema_registry.resolve(str(path))
    assert (ref.name, ref.path, ref.schema) == ("custom", path.resolve(), schema)
    monkeypatch.chdir(tmp_path)
    assert schema_registry.resolve("custom.json").schema == schema  # ends with .json and exists
    assert schema_registry.resolve("./custom.json").path == path.resolve()


def test_path_that_is_not_a_json_object(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(RecsysEvalError, match="is not a JSON object"):
        schema_registry.resolve(str(bad))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(RecsysEvalError, match="is not valid JSON"):
        schema_registry.resolve(str(broken))
