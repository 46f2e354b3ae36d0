"""Shared fixtures: paths to the repository, the bundled examples and the reference goldens."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CONFIGS = ROOT / "configs"
# The reference's goldens live beside the repository in ../shared; tests that need them skip
# with a clear reason when that folder is absent (a package install, say).
SHARED = Path(os.environ.get("RECSYS_EVAL_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"


@pytest.fixture(autouse=True, scope="session")
def _private_parse_cache(tmp_path_factory):
    """The CLI's dbt parse cache goes to a throw-away folder, not the user's ~/.cache."""
    if "RECSYS_EVAL_CACHE_DIR" not in os.environ:
        os.environ["RECSYS_EVAL_CACHE_DIR"] = str(tmp_path_factory.mktemp("parse-cache"))
    yield


@pytest.fixture
def golden():
    def _load(name: str) -> dict:
        path = REFERENCE / "golden" / f"{name}.json"
        if not path.exists():
            pytest.skip(f"reference golden {path} not available")
        return json.loads(path.read_text())

    return _load
