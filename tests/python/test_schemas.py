"""The contracts in schemas/: valid Draft-07, the reference's fields and strictness, formats on."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from conftest import REFERENCE, ROOT

SCHEMAS = ROOT / "schemas"
NAMES = sorted(p.name for p in SCHEMAS.glob("*.json"))


def load(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text())


def validator(name: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(
        load(name), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )


def test_the_expected_contracts_are_there() -> None:
    assert NAMES == [
        "assignment.v1.json",
        "decision.v1.json",
        "decision.v2.json",
        "exposure.v1.json",
        "interaction.v1.json",
        "interleaved_exposure.v1.json",
        "manifest.v1.json",
        "outcome.v1.json",
        "ranklist.v1.json",
        "report.v1.json",
        "report.v2.json",
        "serving_exposure.v1.json",
    ]


@pytest.mark.parametrize("golden", ["offline", "experiment", "ope", "interleaving"])
def test_report_v2_accepts_the_reference_goldens(golden: str) -> None:
    """report.v2 types the OPE and interleaving sections without refusing a reference report."""
    path = REFERENCE / "golden" / f"{golden}.json"
    if not path.exists():
        pytest.skip("reference goldens not available")
    report = json.loads(path.read_text())
    validator("report.v1.json").validate(report)
    validator("report.v2.json").validate(report)


def test_report_v2_only_adds_to_v1() -> None:
    """Every property of v1 is in v2; the typed sections, the summary's optional offline
    `cases_total` and the optional top-level `timings` are the only differences."""
    v1, v2 = load("report.v1.json"), load("report.v2.json")
    assert v1["required"] == v2["required"]
    assert set(v2["properties"]) - set(v1["properties"]) == {"timings"}
    assert v1.get("additionalProperties", True) is True  # v1 accepts a report with timings
    changed = {k for k in v1["properties"] if v1["properties"][k] != v2["properties"][k]}
    assert changed == {"ope", "interleaving", "summary"}
    summary_v1, summary_v2 = v1["properties"]["summary"], v2["properties"]["summary"]
    added = summary_v2["properties"].pop("cases_total")
    assert summary_v1 == summary_v2 and added["type"] == "integer"
    for section in changed - {"summary"}:
        assert v1["properties"][section] == {"type": "object"}
        assert v2["properties"][section]["type"] == "object"
    partial_ope = {**_minimal_report(), "ope": {"unit": "request"}}
    assert validator("report.v1.json").is_valid(partial_ope)  # v1 leaves the section open
    assert not validator("report.v2.json").is_valid(partial_ope)  # v2 requires its fields


def test_report_timings_are_optional_numbers() -> None:
    report = _minimal_report()
    timed = {**report, "timings": {"load_s": 0.2, "models_s": 3, "report_s": 0.01, "total_s": 4}}
    for name in ("report.v1.json", "report.v2.json"):
        assert validator(name).is_valid(report) and validator(name).is_valid(timed)
    assert not validator("report.v2.json").is_valid({**report, "timings": {"load_s": "fast"}})
    assert not validator("report.v2.json").is_valid({**report, "timings": {"total_s": -1}})


def _minimal_report() -> dict:
    return json.loads((REFERENCE / "golden" / "ope.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_schema_is_valid_draft7_with_id_and_docs(name: str) -> None:
    schema = load(name)
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$id"] == name
    assert schema["title"] and schema["description"]


@pytest.mark.parametrize(
    "name",
    [
        "assignment.v1.json",
        "decision.v1.json",
        "exposure.v1.json",
        "outcome.v1.json",
        "ranklist.v1.json",
        "report.v1.json",
    ],
)
def test_same_rules_as_the_reference(name: str) -> None:
    ref_path = REFERENCE / "schemas" / name
    if not ref_path.exists():
        pytest.skip("reference schemas not available")
    ours, ref = load(name), json.loads(ref_path.read_text())
    for doc in (ours, ref):
        for key in ("title", "description"):
            doc.pop(key, None)
    assert ours == ref


@pytest.mark.parametrize(
    "ts,ok",
    [
        ("2025-01-01T00:00:00Z", True),
        ("2025-01-01T00:00:00.123456789+05:30", True),
        ("2025-01-01t00:00:00z", True),
        ("yesterday", False),
        ("2025-01-01", False),
        ("2025-13-01T00:00:00Z", False),
        ("2025-01-01T00:00:00", False),
    ],
)
def test_date_time_is_enforced(ts: str, ok: bool) -> None:
    record = {"request_id": "r", "user_id": "u", "item_id": "i", "event_type": "click", "ts": ts}
    assert validator("outcome.v1.json").is_valid(record) is ok


def test_closed_records_and_open_items() -> None:
    exposure = {
        "request_id": "r",
        "user_id": "u",
        "ts": "2025-01-01T00:00:00Z",
        "items": [{"item_id": "a", "rank": 1, "score": 0.3}],
    }
    assert validator("exposure.v1.json").is_valid(exposure)  # extra keys inside an item pass
    assert not validator("exposure.v1.json").is_valid({**exposure, "tenant": "t1"})
    assert not validator("exposure.v1.json").is_valid({**exposure, "context": {"n": 1}})


def test_serving_shapes() -> None:
    served = {
        "schema_version": "exposure.v1",
        "occurred_at": "2026-02-05T10:00:00Z",
        "tenant_id": "demo",
        "request_id": "00000000-0000-0000-0000-000000000000",
        "surface": "home",
        "segment": "default",
        "served": [{"item_id": "item_1", "rank": 1, "score": 0.12}],
    }
    v = validator("serving_exposure.v1.json")
    assert v.is_valid(served)
    assert not v.is_valid({**served, "request_id": "req-1"})
    assert not v.is_valid({**served, "served": [{"item_id": "a", "rank": 0, "score": None}]})
    interaction = {
        "schema_version": "interaction.v1",
        "occurred_at": "2026-02-05T10:00:02Z",
        "tenant_id": "demo",
        "event_type": "add_to_cart",
        "item_id": "item_2",
    }
    assert validator("interaction.v1.json").is_valid(interaction)
    assert not validator("interaction.v1.json").is_valid({**interaction, "request_id": "r"})
    manifest = {
        "schema_version": "manifest.v1",
        "tenant_id": "demo",
        "created_at": "2026-02-05T10:05:00Z",
        "version": "v1",
        "artifacts": {},
    }
    assert validator("manifest.v1.json").is_valid(manifest)
    assert not validator("manifest.v1.json").is_valid({**manifest, "schema_version": "manifest.v2"})


def test_examples_validate(tmp_path: Path) -> None:
    pairs = {
        "exposures": "exposure.v1.json",
        "outcomes": "outcome.v1.json",
        "assignments": "assignment.v1.json",
        "ranker_a": "ranklist.v1.json",
        "ranker_b": "ranklist.v1.json",
        "outcomes_interleaving": "outcome.v1.json",
    }
    for stem, schema in pairs.items():
        v = validator(schema)
        for line in (ROOT / "examples" / "tiny" / f"{stem}.jsonl").read_text().splitlines():
            assert v.is_valid(json.loads(line)), (stem, line)
