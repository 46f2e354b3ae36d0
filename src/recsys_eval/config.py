"""Strict loading of the reference's YAML files: the dataset config and the eval config.

Every key of the reference (its §9) is accepted with its type; an unknown key, a wrong type or
a second YAML document is an error that names the file and the key's path, e.g.
`config.yaml: offline.metrics[0].kk: unknown key (known: k, name)`.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recsys_eval import experiment_custom_metrics, experiment_readout
from recsys_eval.errors import ConfigError, RecsysEvalError
from recsys_eval.inputs import check_input_file
from recsys_eval.redaction import is_secret_name

MODES = ("offline", "experiment", "ope", "interleaving", "aa-check")
TABULAR_TYPES = ("table", "parquet", "csv")  # recsys_eval.tabular_sources
SOURCE_TYPES = ("jsonl", "postgres", "duckdb", *TABULAR_TYPES)
METRIC_FAMILIES = (
    "precision", "recall", "map", "ndcg", "hitrate", "mrr", "coverage", "novelty", "diversity",
)  # fmt: skip
# Identifiers that reach SQL (slice keys, experiment ids, variant names) must look like this.
SAFE_KEY = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


# --- the shape of the two files ---------------------------------------------------------------
class ListOf:
    def __init__(self, item: Any) -> None:
        self.item = item


class MapOf:
    """A mapping with free string keys and values of one type."""

    def __init__(self, value: Any) -> None:
        self.value = value


SOURCE = {
    "type": str, "path": str, "dsn": str, "query": str,
    # table / parquet / csv sources (recsys_eval.tabular_sources)
    "table": str, "schema": str, "columns": MapOf(str), "ts_unit": str, "order_by": str,
    "layout": str,
}  # fmt: skip
# The contract each source's rows follow (the keys as written in the dataset file).
SOURCE_SCHEMAS = {
    "exposures": "exposure.v1", "outcomes": "outcome.v1", "assignments": "assignment.v1",
    "interleaving.ranker_a": "ranklist.v1", "interleaving.ranker_b": "ranklist.v1",
    "interleaving.outcomes": "outcome.v1", "interleaving.exposures": "interleaved_exposure.v1",
}  # fmt: skip
# An outcomes source may name its events as the team does: {click: [click, tap], conversion:
# [purchase]} maps them onto the contract's types at load (event_type_map, loader).
OUTCOME_SOURCE = {**SOURCE, "event_types": MapOf(ListOf(str))}
EVENT_TYPES = ("click", "conversion")  # outcome.v1's event_type enum, which stays strict

DATASET_SPEC: dict[str, Any] = {
    "exposures": SOURCE,
    "outcomes": OUTCOME_SOURCE,
    "assignments": SOURCE,
    "interleaving": {
        "ranker_a": SOURCE,
        "ranker_b": SOURCE,
        "outcomes": OUTCOME_SOURCE,
        "exposures": SOURCE,  # the logged interleaved lists (interleaved_exposure.v1)
    },
}

_WINDOW = {"start": str, "end": str}
_GUARDRAIL_MARGIN = {"margin": float, "relative": bool, "enabled": bool}
# one custom experiment metric (recsys_eval.experiment_custom_metrics validates the combinations)
_CUSTOM_METRIC = {
    "name": str, "label": str, "type": str, "event_type": str, "event_types": ListOf(str),
    "value": str, "unit": str, "numerator": str, "denominator": str,
    "cap": {"percentile": float, "value": float},
    "role": str, "margin": float, "relative": bool, "higher_is_better": bool,
}  # fmt: skip

EVAL_SPEC: dict[str, Any] = {
    "mode": str,
    "offline": {
        "metrics": ListOf({"name": str, "k": int}),
        "slice_keys": ListOf(str),
        "gates": ListOf({"metric": str, "max_drop": float, "require_significance": bool}),
        "time_split": {
            "train": _WINDOW,
            "test": _WINDOW,
            "outcomes_follow_exposure": bool,
        },
        "bootstrap": {"enabled": bool, "iterations": int, "seed": int, "ci_level": float},
        "history_dir": str,
        "dialect": str,
        "relevance": {"grade": str, "gains": MapOf(float)},
        # paired tests against the --baseline run (recsys_eval.offline_significance)
        "significance": {
            "enabled": bool,
            "test": str,
            "correction": str,
            "alpha": float,
            "permutations": int,
            "iterations": int,
            "seed": int,
        },
    },
    "experiment": {
        "experiment_id": str,
        "slice_keys": ListOf(str),
        "guardrails": {
            "max_latency_p95_ms": float,
            "max_error_rate": float,
            "max_empty_rate": float,
            # non-inferiority margins against the control (experiment_report.GUARDRAIL_MARGINS)
            "error_rate": _GUARDRAIL_MARGIN,
            "empty_rate": _GUARDRAIL_MARGIN,
            "latency_mean": _GUARDRAIL_MARGIN,
        },
        "control_variant": str,
        "primary_metrics": ListOf(str),
        "metrics": ListOf(_CUSTOM_METRIC),  # custom metrics (experiment_custom_metrics.py)
        "cuped": {"enabled": bool, "covariate_key": str},
        # the playbook's read-out (recsys_eval.experiment_readout): duration for a relative MDE,
        # the Bayesian chance to beat control and expected loss under a Gaussian prior
        "mde": float,
        "mde_power": float,
        "bayesian": {
            "enabled": bool,
            "prior": {"mean": float, "variance": float, "proper": bool},
        },
        "power": {
            "metric": str,
            "baseline_rate": float,
            "mde": float,
            "alpha": float,
            "power": float,
            "daily_samples": int,
        },
        "multiple_comparisons": {"method": str, "alpha": float},
        "srm": {
            "enabled": bool,
            "alpha": float,
            "min_sample": int,
            "expected": MapOf(float),
            "slice_keys": ListOf(str),
            "gate_enabled": bool,
        },
        "decision": {
            "enabled": bool,
            "output_path": str,
            "candidate_variant": str,
            "primary_thresholds": MapOf(float),
            "guardrail_gate": bool,
            "srm_gate": bool,
            "policy": str,
        },
        "aa_check": {"enabled": bool, "thresholds": ListOf(float)},
        # safe to peek and lift over time (experiment_over_time.py)
        "sequential": {"enabled": bool, "tuning_parameter": float, "srm_concentration": float},
        "over_time": {"bucket": str},
    },
    "ope": {
        "reward_event": str,
        "unit": str,
        "reward_aggregation": str,
        "top_k": int,
        "clipping": float,
        "min_propensity": float,
        "enable_snips": bool,
        "enable_dr": bool,
        "position_discount": str,
        "allow_missing_target_propensity": bool,
        # not in the reference (docs/ope.md)
        "reward_model": str,
        "estimators": ListOf(str),
        "switch_threshold": float,
        "slice_keys": ListOf(str),
        "bootstrap": {"enabled": bool, "iterations": int, "seed": int, "ci_level": float},
    },
    "interleaving": {
        "algorithm": str,
        "seed": int,
        "max_results": int,
        "slice_keys": ListOf(str),
        "bootstrap": {"iterations": int, "ci_level": float},
    },
    "scale": {
        "mode": str,
        "stream": {"max_open_requests": int, "temp_dir": str},
        "duckdb": {"enabled": bool},
    },
    "privacy": {"pii_guard": str},  # off | flag | reject (recsys_eval.privacy)
    "artifacts": {
        "manifest_uri": str,
        "object_store": {
            "type": str,
            "s3": {
                "endpoint": str,
                "bucket": str,
                "access_key": str,
                "secret_key": str,
                "region": str,
                "use_ssl": bool,
            },
        },
    },
}

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _fmt_path(path: str) -> str:
    return path or "(top level)"


def _check(value: Any, spec: Any, path: str, file: str) -> Any:
    """Return `value` checked against `spec`; raise ConfigError naming file and path."""
    if value is None:
        # `key:` with nothing after it: YAML null. Treat as absent, as yaml.v3 does.
        return None
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{file}: {_fmt_path(path)}: expected a mapping, got {_kind(value)}")
        out: dict[str, Any] = {}
        for key, sub in value.items():
            sub_path = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str) or key not in spec:
                known = ", ".join(sorted(spec))
                raise ConfigError(f"{file}: {sub_path}: unknown key (known: {known})")
            checked = _check(sub, spec[key], sub_path, file)
            if checked is not None:
                out[key] = checked
        return out
    if isinstance(spec, ListOf):
        if not isinstance(value, list):
            raise ConfigError(f"{file}: {path}: expected a list, got {_kind(value)}")
        return [_check(v, spec.item, f"{path}[{i}]", file) for i, v in enumerate(value)]
    if isinstance(spec, MapOf):
        if not isinstance(value, dict):
            raise ConfigError(f"{file}: {path}: expected a mapping, got {_kind(value)}")
        return {str(k): _check(v, spec.value, f"{path}.{k}", file) for k, v in value.items()}
    return _scalar(value, spec, path, file)


def _scalar(value: Any, typ: type, path: str, file: str) -> Any:
    ok = False
    if typ is bool:
        ok = isinstance(value, bool)
    elif typ is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif typ is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not math.isfinite(float(value)):
            raise ConfigError(f"{file}: {path}: must be a finite number, got {value!r}")
        if ok:
            value = float(value)
    elif typ is str:
        ok = isinstance(value, str)
    if not ok:
        got = _kind(value, path)
        raise ConfigError(f"{file}: {path}: expected {_TYPE_NAMES[typ]}, got {got}")
    return value


def _kind(value: Any, path: str = "") -> str:
    """What a wrong value is, for a message; only its type under a secret-named key."""
    if path and is_secret_name(path.rsplit(".", 1)[-1]):
        return f"{type(value).__name__} (value not shown: a secret)"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"string {value!r}"
    return f"{type(value).__name__} {value!r}"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys in a mapping."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise ConfigError(f"{loader.name}: line {line}: duplicate key {key!r}")
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read exactly one YAML document (a mapping) from `path`."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    loader = _StrictLoader(text)
    loader.name = str(path)
    try:
        if not loader.check_data():
            return {}
        data = loader.get_data()
        if loader.check_data():
            raise ConfigError(f"{path}: only one YAML document is allowed (found a second '---')")
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {_kind(data)}")
    return data


# --- the loaded configuration -----------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    name: str  # exposures, outcomes, assignments, ranker_a, ranker_b, (interleaving) outcomes
    type: str
    path: Path | None
    dsn: str | None
    query: str | None
    # outcomes only: source event name -> contract type (click | conversion), None: no mapping
    event_types: dict[str, str] | None = None
    event_types_key: str = ""  # where the mapping is written, e.g. outcomes.event_types
    # table / parquet / csv: the source's block as written (table, columns, ts_unit, ...)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunConfig:
    mode: str
    dataset: dict[str, Any]  # checked, with relative paths resolved
    eval: dict[str, Any]  # checked, defaults applied
    dataset_file: Path
    eval_file: Path
    dataset_as_written: dict[str, Any] = field(default_factory=dict)  # paths as in the YAML

    def sources(self) -> list[Source]:
        """The sources this mode reads, in the reference's order."""
        if self.mode == "interleaving":
            block = self.dataset.get("interleaving", {})
            names = (("ranker_a", "ranker_a"), ("ranker_b", "ranker_b"), ("outcomes", "outcomes"))
            names += (("exposures", "interleaved_exposures"),)
            prefix = "interleaving."
        else:
            block = self.dataset
            prefix = ""
            names = (("exposures", "exposures"), ("outcomes", "outcomes"))
            names += (("assignments", "assignments"),)
        out = []
        for key, name in names:
            src = block.get(key)
            if src is None:
                continue
            path = src.get("path")
            out.append(
                Source(
                    name=name,
                    type=src.get("type", "").lower(),
                    path=Path(path) if path else None,
                    dsn=src.get("dsn"),
                    query=src.get("query"),
                    event_types=event_type_map(src.get("event_types")),
                    event_types_key=f"{prefix}{key}.event_types",
                    options=dict(src),
                )
            )
        return out


def _resolve_path(raw: str, dataset_file: Path, where: str) -> str:
    """Relative paths resolve against the working directory (as the reference does), then
    against the dataset file's folder."""
    candidate = Path(raw)
    if candidate.is_absolute() or candidate.exists():
        return str(candidate.resolve()) if candidate.exists() else str(candidate)
    beside = (dataset_file.parent / candidate).resolve()
    if beside.exists():
        return str(beside)
    raise ConfigError(
        f"{dataset_file}: {where}.path: file not found: {raw} "
        f"(looked in the working directory and in {dataset_file.parent})"
    )


def event_type_map(mapping: dict[str, list[str]] | None) -> dict[str, str] | None:
    """`{click: [click, tap], ...}` (checked) -> `{"click": "click", "tap": "click", ...}`."""
    if mapping is None:
        return None
    return {name: target for target, names in mapping.items() for name in names}


def _check_event_types(mapping: dict[str, list[str]], where: str, dataset_file: Path) -> None:
    """Targets are the contract's types, names non-empty strings, each name mapped once."""
    key = f"{dataset_file}: {where}.event_types"
    if not mapping:
        raise ConfigError(
            f"{key}: empty; map source event names onto {' and '.join(EVENT_TYPES)} "
            "(e.g. {click: [click, tap], conversion: [purchase]}) or remove the key"
        )
    seen: dict[str, str] = {}
    for target, names in mapping.items():
        if target not in EVENT_TYPES:
            raise ConfigError(
                f"{key}.{target}: unknown event type {target!r}: the outcome contract "
                f"(outcome.v1) knows {', '.join(EVENT_TYPES)}; map your names onto those"
            )
        if not names:
            raise ConfigError(f"{key}.{target}: lists no event name; list at least one")
        for i, name in enumerate(names):
            here = f"{where}.event_types.{target}[{i}]"
            if not isinstance(name, str) or name == "":
                raise ConfigError(
                    f"{dataset_file}: {here}: an event name must be a non-empty string"
                )
            if name in seen:
                raise ConfigError(
                    f"{dataset_file}: {here}: {name!r} is mapped twice (also at {seen[name]}); "
                    "a source event name maps to one type"
                )
            seen[name] = here


def _check_source(src: dict[str, Any] | None, where: str, dataset_file: Path) -> None:
    if src is None:
        raise ConfigError(f"{dataset_file}: {where}: required for this mode")
    typ = src.get("type", "").lower()
    if "event_types" in src:
        _check_event_types(src["event_types"], where, dataset_file)
        if typ in ("postgres", "duckdb"):  # never ignored: the loaders are the ones that map
            raise ConfigError(
                f"{dataset_file}: {where}.event_types: applies to a jsonl source in this "
                f"version, not {typ or 'one without a type'}; map the names in your query"
            )
    if typ not in SOURCE_TYPES:
        raise ConfigError(
            f"{dataset_file}: {where}.type: must be one of {', '.join(SOURCE_TYPES)}, "
            f"got {src.get('type', '')!r}"
        )
    if typ == "jsonl":
        if not src.get("path"):
            raise ConfigError(f"{dataset_file}: {where}.path: required for a jsonl source")
        src["path"] = _resolve_path(src["path"], dataset_file, where)
        check_input_file(src["path"], f"{dataset_file}: {where}.path")  # not a FIFO, /proc, ...
    elif typ in TABULAR_TYPES:  # recsys_eval.tabular_sources: checked before anything loads
        from recsys_eval.tabular_sources import check_config

        try:
            check_config(src, where, dataset_file, SOURCE_SCHEMAS.get(where, ""))
        except RecsysEvalError as exc:
            raise ConfigError(str(exc)) from None
    else:
        # postgres / duckdb: loaded by recsys_eval.sql_sources (the DSN never printed)
        if not src.get("dsn") or not src.get("query", "").strip():
            raise ConfigError(f"{dataset_file}: {where}: a {typ} source needs dsn and query")


def _default(block: dict[str, Any], key: str, value: Any, bad: Any = None) -> None:
    """Set block[key] = value when missing (or when `bad(current)` is true)."""
    if key not in block or (bad is not None and bad(block[key])):
        block[key] = value


def apply_defaults(cfg: dict[str, Any]) -> dict[str, Any]:
    """The reference's normalization (§9.2): defaults filled in, out-of-range values replaced."""
    cfg = copy.deepcopy(cfg)
    outside_unit = lambda x: not 0 < x < 1  # noqa: E731

    off = cfg.setdefault("offline", {})
    boot = off.setdefault("bootstrap", {})
    _default(boot, "enabled", False)
    _default(boot, "iterations", 200, lambda x: x <= 0)
    _default(boot, "seed", 42, lambda x: x == 0)
    _default(boot, "ci_level", 0.95, outside_unit)

    exp = cfg.setdefault("experiment", {})
    mc = exp.setdefault("multiple_comparisons", {})
    _default(mc, "method", "fdr_bh", lambda x: x == "")
    mc["method"] = mc["method"].lower()
    _default(mc, "alpha", 0.05, outside_unit)
    srm = exp.setdefault("srm", {})
    _default(srm, "enabled", False)
    _default(srm, "alpha", 0.001, lambda x: x == 0)
    _default(srm, "min_sample", 100, lambda x: x == 0)
    aa = exp.setdefault("aa_check", {})
    _default(aa, "enabled", False)
    _default(aa, "thresholds", [0.05, 0.01, 0.001], lambda x: not x)
    power = exp.get("power")
    if power is not None:
        _default(power, "alpha", 0.05, outside_unit)
        _default(power, "power", 0.8, outside_unit)
        _default(power, "metric", "ctr", lambda x: x == "")
        power["metric"] = power["metric"].lower()

    ope = cfg.setdefault("ope", {})
    _default(ope, "reward_event", "click", lambda x: x == "")
    _default(ope, "unit", "request", lambda x: x == "")
    _default(ope, "reward_aggregation", "sum", lambda x: x == "")
    _default(ope, "top_k", 0)
    _default(ope, "clipping", 0.0)
    _default(ope, "min_propensity", 1e-6, lambda x: x == 0)
    _default(ope, "enable_snips", False)
    _default(ope, "enable_dr", False)
    _default(ope, "allow_missing_target_propensity", False)
    _default(ope, "reward_model", "exposure", lambda x: x == "")
    ope["reward_model"] = ope["reward_model"].strip().lower()
    _default(ope, "switch_threshold", 10.0)
    ope_boot = ope.setdefault("bootstrap", {})
    _default(ope_boot, "enabled", True)
    _default(ope_boot, "iterations", 200, lambda x: x <= 0)
    _default(ope_boot, "seed", 42)
    _default(ope_boot, "ci_level", 0.95, outside_unit)

    inter = cfg.setdefault("interleaving", {})
    _default(inter, "algorithm", "team_draft", lambda x: x == "")
    inter["algorithm"] = inter["algorithm"].lower()
    _default(inter, "seed", 42, lambda x: x == 0)
    _default(inter, "max_results", 0)

    scale = cfg.setdefault("scale", {})
    _default(scale, "mode", "memory", lambda x: x == "")
    scale["mode"] = scale["mode"].lower()
    return cfg


def _validate_for_mode(mode: str, cfg: dict[str, Any], file: Path) -> None:
    from recsys_eval.privacy import check_mode

    privacy = cfg.get("privacy", {})
    if "pii_guard" in privacy:  # absent = off; not added, so effective_config stays as written
        privacy["pii_guard"] = check_mode(privacy["pii_guard"], f"{file}: privacy.pii_guard")
    if cfg["scale"]["mode"] not in ("memory", "stream", "duckdb"):
        raise ConfigError(
            f"{file}: scale.mode: must be memory, stream or duckdb, got {cfg['scale']['mode']!r}"
        )
    for where, keys in (
        ("offline.slice_keys", cfg["offline"].get("slice_keys", [])),
        ("experiment.slice_keys", cfg["experiment"].get("slice_keys", [])),
        ("experiment.srm.slice_keys", cfg["experiment"]["srm"].get("slice_keys", [])),
        ("interleaving.slice_keys", cfg["interleaving"].get("slice_keys", [])),
    ):
        for i, key in enumerate(keys):
            if not SAFE_KEY.match(key):
                raise ConfigError(
                    f"{file}: {where}[{i}]: {key!r} is not a valid context key "
                    "(letters, digits and _ . : - only, at most 64 characters)"
                )
    exp_id = cfg["experiment"].get("experiment_id")
    if exp_id is not None and exp_id != "" and not SAFE_KEY.match(exp_id):
        raise ConfigError(
            f"{file}: experiment.experiment_id: {exp_id!r} is not a valid identifier "
            "(letters, digits and _ . : - only, at most 64 characters)"
        )
    if mode == "offline":
        metrics = cfg["offline"].get("metrics", [])
        if not metrics:
            raise ConfigError(f"{file}: offline.metrics is required")
        for i, m in enumerate(metrics):
            if "name" not in m:
                raise ConfigError(f"{file}: offline.metrics[{i}].name: required")
            family = m["name"].strip().lower().removesuffix("@k")
            if family not in METRIC_FAMILIES:
                raise ConfigError(
                    f"{file}: offline.metrics[{i}].name: unknown metric: {m['name']} "
                    f"(known: {', '.join(METRIC_FAMILIES)})"
                )
            if m.get("k", 0) <= 0:
                raise ConfigError(f"{file}: offline.metrics[{i}]: {m['name']}@K requires k > 0")
        split = cfg["offline"].get("time_split")
        if split is not None:
            _validate_time_split(split, file)
        _validate_offline_options(cfg["offline"], file)
    policy = cfg["experiment"].get("decision", {}).get("policy", "playbook")
    if mode in ("experiment", "aa-check"):
        _validate_guardrail_margins(cfg["experiment"].get("guardrails", {}), file)
        _validate_sequential(cfg["experiment"], file)
        experiment_custom_metrics.validate(cfg["experiment"], file)
        experiment_readout.validate(cfg["experiment"], file)
    if mode == "experiment" and policy.strip().lower() not in ("playbook", "reference"):
        raise ConfigError(
            f"{file}: experiment.decision.policy: must be playbook or reference, got {policy!r}"
        )
    if mode == "aa-check" and not cfg["experiment"]["aa_check"]["enabled"]:
        raise ConfigError(f"{file}: experiment.aa_check.enabled must be true for aa-check mode")
    if mode == "ope":
        ope = cfg["ope"]
        if ope["reward_event"] not in ("click", "conversion"):
            raise ConfigError(f"{file}: ope.reward_event must be click or conversion")
        if ope["unit"] not in ("item", "request"):
            raise ConfigError(f"{file}: ope.unit must be item or request")
        if ope["reward_aggregation"] not in ("sum", "max"):
            raise ConfigError(f"{file}: ope.reward_aggregation must be sum or max")
        _validate_ope_extras(ope, cfg["scale"]["mode"], file)


def _validate_sequential(exp: dict[str, Any], file: Path) -> None:
    """experiment.sequential.{tuning_parameter, srm_concentration} > 0, over_time.bucket."""
    seq = exp.get("sequential") or {}
    for key in ("tuning_parameter", "srm_concentration"):
        value = seq.get(key)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ConfigError(
                f"{file}: experiment.sequential.{key}: must be a number > 0, got {value}"
            )
    bucket = (exp.get("over_time") or {}).get("bucket")
    if bucket is not None and bucket.strip().lower() not in ("hour", "day", "week"):
        raise ConfigError(
            f"{file}: experiment.over_time.bucket: must be hour, day or week, got {bucket!r}"
        )


OPE_ESTIMATORS = ("ips", "snips", "dr", "dm", "sndr", "switch_dr")
# slate OPE over the logged ranked list (recsys_eval/ope/slate.py, docs/ope.md "Slate OPE")
OPE_ESTIMATORS += ("slate_standard_ips", "slate_independent_ips", "slate_rips")


def _validate_guardrail_margins(guardrails: dict[str, Any], file: Path) -> None:
    """experiment.guardrails.<error_rate|empty_rate|latency_mean>: {margin, relative, enabled}."""
    for name in ("error_rate", "empty_rate", "latency_mean"):
        block = guardrails.get(name)
        if block is None or block.get("enabled", True) is False:
            continue
        where = f"{file}: experiment.guardrails.{name}"
        if "margin" not in block:
            raise ConfigError(
                f"{where}.margin: required (the non-inferiority margin, >= 0; "
                f"or enabled: false to drop this test)"
            )
        if block["margin"] < 0:
            raise ConfigError(f"{where}.margin: must be >= 0, got {block['margin']}")
        relative = block.get("relative", name == "latency_mean")  # the defaults' types
        if relative and block["margin"] >= 10:
            raise ConfigError(
                f"{where}.margin: a relative margin is a fraction of the control "
                f"(0.10 = +10 %), got {block['margin']}"
            )


def _validate_ope_extras(ope: dict[str, Any], scale_mode: str, file: Path) -> None:
    """The OPE keys the reference lacks, and its stream-mode rule."""
    if scale_mode == "stream":
        raise ConfigError(f"{file}: ope stream mode is not supported")
    if ope["reward_model"] not in ("exposure", "reference"):
        raise ConfigError(
            f"{file}: ope.reward_model: must be exposure or reference, got {ope['reward_model']!r}"
        )
    for i, name in enumerate(ope.get("estimators", [])):
        if name not in OPE_ESTIMATORS:
            raise ConfigError(
                f"{file}: ope.estimators[{i}]: unknown estimator {name!r} "
                f"(known: {', '.join(OPE_ESTIMATORS)})"
            )
    if len(set(ope.get("estimators", []))) != len(ope.get("estimators", [])):
        raise ConfigError(f"{file}: ope.estimators: an estimator is listed twice")
    if ope["switch_threshold"] <= 0:
        raise ConfigError(
            f"{file}: ope.switch_threshold: must be > 0, got {ope['switch_threshold']}"
        )
    if ope["bootstrap"]["iterations"] > 100_000:
        raise ConfigError(f"{file}: ope.bootstrap.iterations: at most 100000")
    for i, key in enumerate(ope.get("slice_keys", [])):
        if not SAFE_KEY.match(key):
            raise ConfigError(
                f"{file}: ope.slice_keys[{i}]: {key!r} is not a valid context key "
                "(letters, digits and _ . : - only, at most 64 characters)"
            )


OFFLINE_DIALECTS = ("reference", "trec")
RELEVANCE_GRADES = ("binary", "event", "value")
GAIN_EVENTS = ("click", "conversion")


def _validate_offline_options(off: dict[str, Any], file: Path) -> None:
    from recsys_eval import offline_significance

    offline_significance.validate(off, file)
    dialect = off.get("dialect", "reference")
    if dialect.strip().lower() not in OFFLINE_DIALECTS:
        raise ConfigError(
            f"{file}: offline.dialect: must be {' or '.join(OFFLINE_DIALECTS)}, got {dialect!r}"
        )
    relevance = off.get("relevance", {})
    grade = relevance.get("grade", "binary")
    if grade.strip().lower() not in RELEVANCE_GRADES:
        raise ConfigError(
            f"{file}: offline.relevance.grade: must be {', '.join(RELEVANCE_GRADES)}, got {grade!r}"
        )
    for event, gain in relevance.get("gains", {}).items():
        if event not in GAIN_EVENTS:
            raise ConfigError(
                f"{file}: offline.relevance.gains.{event}: unknown event type "
                f"(known: {', '.join(GAIN_EVENTS)})"
            )
        if gain < 0:
            raise ConfigError(f"{file}: offline.relevance.gains.{event}: must be >= 0, got {gain}")


def _validate_time_split(split: dict[str, Any], file: Path) -> None:
    from recsys_eval.timeutil import parse_rfc3339

    parsed = {}
    for window in ("train", "test"):
        for end in ("start", "end"):
            where = f"offline.time_split.{window}.{end}"
            raw = split.get(window, {}).get(end)
            if raw is None:
                raise ConfigError(f"{file}: {where}: required when time_split is set")
            try:
                parsed[(window, end)] = parse_rfc3339(raw)
            except ValueError:
                raise ConfigError(f"{file}: {where}: not an RFC 3339 timestamp: {raw!r}") from None
    for window in ("train", "test"):
        if parsed[(window, "start")] > parsed[(window, "end")]:
            raise ConfigError(f"{file}: offline.time_split.{window}: start is after end")
    if parsed[("train", "end")] > parsed[("test", "start")]:
        raise ConfigError(f"{file}: offline.time_split: train.end is after test.start")


def load_run_config(
    dataset_file: Path,
    eval_file: Path,
    mode_flag: str | None = None,
    experiment_id_flag: str | None = None,
) -> RunConfig:
    dataset = _check(read_yaml(dataset_file), DATASET_SPEC, "", str(dataset_file)) or {}
    as_written = copy.deepcopy(dataset)
    raw_eval = _check(read_yaml(eval_file), EVAL_SPEC, "", str(eval_file)) or {}
    mode = (mode_flag or raw_eval.get("mode") or "").strip().lower()
    written = (raw_eval.get("mode") or "").strip().lower()
    if mode_flag and written and mode != written:
        raise ConfigError(
            f"--mode {mode_flag.strip()} contradicts mode: {raw_eval['mode'].strip()} in "
            f"{eval_file}; drop one of them or make them agree"
        )
    if not mode:
        raise ConfigError("mode must be set in config or --mode")
    if mode not in MODES:
        raise ConfigError(f"unsupported mode {mode!r} (known: {', '.join(MODES)})")
    cfg = apply_defaults(raw_eval)
    if experiment_id_flag is not None and mode == "experiment":
        cfg["experiment"]["experiment_id"] = experiment_id_flag
    _validate_for_mode(mode, cfg, eval_file)

    if mode == "interleaving":
        block = dataset.get("interleaving") or {}
        # With the logged interleaved lists the rankers' own lists are optional.
        required = ("outcomes",) if "exposures" in block else ("ranker_a", "ranker_b", "outcomes")
        for key in ("ranker_a", "ranker_b", "outcomes", "exposures"):
            if key in required or key in block:
                _check_source(block.get(key), f"interleaving.{key}", dataset_file)
        boot = cfg["interleaving"].get("bootstrap", {})
        if not 1 <= boot.get("iterations", 200) <= 10000:
            raise ConfigError(
                f"{eval_file}: interleaving.bootstrap.iterations: must be in [1, 10000]"
            )
        if not 0 < boot.get("ci_level", 0.95) < 1:
            raise ConfigError(f"{eval_file}: interleaving.bootstrap.ci_level: must be in (0, 1)")
    else:
        required = ["exposures", "outcomes"]
        if mode in ("experiment", "aa-check"):
            required.append("assignments")
        for key in required:
            _check_source(dataset.get(key), key, dataset_file)
        optional = [k for k in ("assignments",) if k not in required and k in dataset]
        for key in optional:
            _check_source(dataset.get(key), key, dataset_file)
    return RunConfig(
        mode=mode,
        dataset=dataset,
        eval=cfg,
        dataset_file=dataset_file,
        eval_file=eval_file,
        dataset_as_written=as_written,
    )
