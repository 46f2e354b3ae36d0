"""Mode plug-ins for `recsys-eval run`.

A mode that is not offline / experiment / aa-check (those are wired into `commands/run.py`
directly) brings a `ModePlugin`: the dbt models it needs, the dbt vars its config sets, and a
`collect` step that reads the built marts (and may write marts of its own, e.g. OPE estimates)
into its report section. `commands/run.py` does the rest: loading, data quality, the envelope,
validation against report.v1, the atomic write.

Plug-ins live in their mode's package and are imported lazily, so a broken or slow import in one
mode never affects the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys_eval.config import RunConfig

# The schemas dbt builds into (dbt_project.yml; macros/utils/generate_schema_name.sql names them as
# they are when recsys_eval is the root project): the staging and intermediate models, the marts.
# The CLI passes neither recsys_eval__staging_schema nor recsys_eval__marts_schema.
STAGING_SCHEMA = "recsys_eval_staging"
MARTS_SCHEMA = "recsys_eval_marts"


def model_schema(name: str) -> str:
    """The schema of a model of the package, by its name (stg_ / int_ / base_: staging)."""
    return STAGING_SCHEMA if name.startswith(("stg_", "int_", "base_")) else MARTS_SCHEMA


@dataclass(frozen=True)
class ModeContext:
    """What `collect` gets: the run database (read-write, dbt has finished), the schema the marts
    were built in (a plug-in writes its own marts there), the schema of the staging and
    intermediate models, and the run's configuration."""

    cfg: RunConfig
    database: Path
    schema: str = MARTS_SCHEMA
    staging_schema: str = STAGING_SCHEMA


@dataclass
class ModeOutput:
    """A mode's contribution to the report."""

    key: str  # the report section's key: "ope", "interleaving"
    section: dict[str, Any]
    cases_evaluated: int
    warnings: list[str] = field(default_factory=list)
    highlights: list[str] = field(default_factory=list)
    include_data_quality: bool = True  # the reference has no data_quality for interleaving


@dataclass(frozen=True)
class ModePlugin:
    selectors: tuple[str, ...]  # dbt selectors built besides the data-quality marts
    dbt_vars: Callable[[RunConfig], dict[str, Any]]
    collect: Callable[[ModeContext], ModeOutput]


# mode -> "module:attribute" of its ModePlugin
PLUGINS: dict[str, str] = {
    "ope": "recsys_eval.ope.plugin:PLUGIN",
    "interleaving": "recsys_eval.interleaving.plugin:PLUGIN",
}


def plugin_for(mode: str) -> ModePlugin | None:
    """The mode's plug-in, or None when the mode is built into run.py or not built yet."""
    target = PLUGINS.get(mode)
    if target is None:
        return None
    module_name, attribute = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None  # the mode's package is not in this version
        raise
    plugin = getattr(module, attribute)
    assert isinstance(plugin, ModePlugin)
    return plugin
