"""Where the project's files are: schemas/, the dbt project, profiles.yml."""

from __future__ import annotations

import os
from pathlib import Path


def project_dir() -> Path:
    """The dbt project root (the repository root in a source checkout).

    `RECSYS_EVAL_PROJECT_DIR` overrides it; otherwise it is found from this file's location.
    """
    override = os.environ.get("RECSYS_EVAL_PROJECT_DIR")
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parents[2]


def schemas_dir() -> Path:
    return project_dir() / "schemas"
