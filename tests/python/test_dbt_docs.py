"""dbt-native discovery: `dbt docs generate` works on the built seeds project; every mart states
its grain and documents every column it has; the reports are declared as dbt exposures that
depend on the marts each mode reads."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml
from dbt_helpers import DBT_BIN, REPO_ROOT, run_dbt

EXPOSURES = {
    "recsys_eval_offline_report": {"fct_offline_metrics", "fct_data_quality"},
    "recsys_eval_experiment_report": {"fct_experiment_significance", "fct_experiment_srm"},
    "recsys_eval_aa_check_report": {"fct_experiment_significance"},
    "recsys_eval_ope_report": {"fct_ope_samples"},
    "recsys_eval_interleaving_report": {"fct_interleaving_results"},
}


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("docs")
    built, database = run_dbt(tmp, "docs", "build")
    assert built.returncode == 0, built.stdout[-3000:]
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(REPO_ROOT),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "RECSYS_EVAL_DUCKDB_PATH": str(database),
    }
    gen = subprocess.run(
        [str(DBT_BIN), "docs", "generate", "--target", "duckdb", "--project-dir", str(REPO_ROOT),
         "--target-path", str(tmp / "target_docs"), "--log-path", str(tmp / "logs_docs")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert gen.returncode == 0, gen.stdout[-3000:]
    target = tmp / "target_docs"
    assert (target / "index.html").stat().st_size > 0
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    return manifest, catalog


def _marts(manifest):
    return {
        uid: node
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] == "model" and "/marts/" in node["original_file_path"]
    }


def test_every_mart_states_its_grain_and_documents_its_columns(docs):
    manifest, catalog = docs
    marts = _marts(manifest)
    assert len(marts) >= 12
    problems = []
    for uid, node in sorted(marts.items()):
        if "grain:" not in node["description"].lower():
            problems.append(f"{node['name']}: description does not state the grain")
        built = catalog["nodes"].get(uid)
        if built is None:
            problems.append(f"{node['name']}: not in the catalog (not built?)")
            continue
        documented = {k.lower(): v["description"].strip() for k, v in node["columns"].items()}
        for column in built["columns"]:
            if not documented.get(column.lower()):
                problems.append(f"{node['name']}.{column.lower()}: no column description")
    assert problems == []


def test_reports_are_declared_as_exposures(docs):
    manifest, _ = docs
    exposures = {e["name"]: e for e in manifest["exposures"].values()}
    assert set(EXPOSURES) <= set(exposures)
    for name, needed in EXPOSURES.items():
        exposure = exposures[name]
        assert exposure["description"].strip() and exposure["owner"]["name"]
        depends = {uid.split(".")[-1] for uid in exposure["depends_on"]["nodes"]}
        assert needed <= depends, name
        assert all(
            uid.split(".")[-1] in {n["name"] for n in _marts(manifest).values()}
            for uid in exposure["depends_on"]["nodes"]
        )


# -- descriptions say the rule, not only where the reference states it ------------------------

CITATION = re.compile(r"(?:(?:the\s+)?reference(?:'s)?\s+)?§\s*\d+(?:\.\d+)*(?:\s*\([a-z]\))?")
# a citation used as the noun of the sentence: "the tallies of §5.2", "see §5.4", "as in §3"
CITATION_AS_NOUN = re.compile(r"\b(?:of|in|per|see|under)\s+(?:the\s+)?(?:reference(?:'s)?\s+)?§")
OWN_WORDS = 8  # words a sentence that cites a section must say itself


def _descriptions(node, where: str):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                yield where, " ".join(value.split())
            else:
                yield from _descriptions(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            name = value.get("name", i) if isinstance(value, dict) else i
            yield from _descriptions(value, f"{where}[{name}]")


def test_descriptions_citing_the_reference_state_the_rule_themselves():
    """A reader without the reference's document learns the rule from the description; the
    section number may follow it, never stand in for it."""
    files = sorted((REPO_ROOT / "models").rglob("*.yml"))
    citing, problems = 0, []
    for path in files:
        for where, text in _descriptions(yaml.safe_load(path.read_text()), path.name):
            if "§" not in text:
                continue
            citing += 1
            if CITATION_AS_NOUN.search(text):
                problems.append(f"{where}: a section number stands for the rule: {text[:120]}")
            for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text):
                if "§" in sentence:
                    own = re.findall(r"[A-Za-z][\w'-]*", CITATION.sub(" ", sentence))
                    if len(own) < OWN_WORDS:
                        problems.append(f"{where}: only {len(own)} words besides the citation")
    assert citing >= 10  # the scan finds the descriptions (models/**/*.yml)
    assert problems == []
