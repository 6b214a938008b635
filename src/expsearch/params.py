"""Load params.yaml and check it against the project's JSON schema.

    params = load_params("params.yaml")     # dict, or ParamsError naming every bad key
    load_params("params.yaml", "profiles/thousand/params.yaml")  # overlays merged over it
    check_params(config_dict)               # the same checks on an already-loaded dict

The schema (workflow/schemas/params.schema.yaml, shipped in the package as
expsearch/schemas/) checks structure; `Space.from_params` then checks what a
schema cannot (bounds, conditions). Every problem is reported with its key
path, e.g. `space.dimensions.lr.high`, and what is allowed there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from .agents.names import llm_name_problems, unknown_agents
from .space import Space, SpaceError
from .yamlio import YamlError, load_yaml, load_yaml_file


class ParamsError(ValueError):
    """params.yaml is wrong. `problems` holds (key path, reason) pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s):"]
        lines += [f"  {path}: {reason}" for path, reason in problems]
        super().__init__("\n".join(lines))


@cache
def schema() -> dict[str, Any]:
    text = resources.files("expsearch").joinpath("schemas/params.schema.yaml").read_text()
    return load_yaml(text, name="params.schema.yaml")


def load_params(path: str | Path = "params.yaml", *overlays: str | Path) -> dict[str, Any]:
    """The checked params; each overlay is merged over them key by key, as
    Snakemake merges a profile's `configfile:` over params.yaml."""
    params: Any = {}
    for source in (path, *overlays):
        try:
            params = merge_params(params, load_yaml_file(source))
        except YamlError as exc:
            raise ParamsError(str(source), [("<file>", str(exc))]) from None
    return check_params(params, source=" + ".join(map(str, (path, *overlays))))


def merge_params(base: Any, overlay: Any) -> Any:
    """`overlay` over `base`: mappings merge recursively, anything else replaces."""
    if not (isinstance(base, Mapping) and isinstance(overlay, Mapping)):
        return overlay
    merged = dict(base)
    for key, value in overlay.items():
        merged[key] = merge_params(base[key], value) if key in base else value
    return merged


def check_params(params: Any, source: str = "params.yaml") -> dict[str, Any]:
    """Return `params` unchanged if valid, else raise ParamsError."""
    validator_cls = jsonschema.validators.validator_for(schema())
    validator = validator_cls(schema())
    problems = sorted(
        {problem for error in validator.iter_errors(params) for problem in _explain(error)}
    )
    if problems:
        raise ParamsError(source, problems)
    try:
        space = Space.from_params(params)
    except SpaceError as exc:
        raise ParamsError(source, [(exc.key, str(exc).split(": ", 1)[1])]) from None
    problems = _cross_checks(params, space)
    if problems:
        raise ParamsError(source, problems)
    return params


def _cross_checks(params: Mapping[str, Any], space: Space) -> list[tuple[str, str]]:
    """Rules that span sections: every backbone the space can propose has a
    store, fusions and checkpoints name extracted backbones, the window serves
    every seq_len, self-healing diagnoses with a defined LLM agent, the analyses
    name campaigns that exist."""
    problems = []
    data = params["data"]
    if data["source"] == "synthetic":
        # The generator writes the Nexar layout: <root>/train.csv and <root>/videos/.
        for key, name in (("labels", "train.csv"), ("videos", "videos")):
            if data[key] != name:
                problems.append(
                    (f"data.{key}", f"the synthetic generator writes {name!r}, not {data[key]!r}")
                )
    split = data["split"]
    total = split["train"] + split["val"] + split["test"]
    if abs(total - 1.0) > 1e-9:
        problems.append(("data.split", f"train + val + test must be 1, got {total:g}"))
    features = params["features"]
    extracted = set(features["backbones"])
    for name, parts in features["fusions"].items():
        if name in extracted:
            problems.append(
                (f"features.fusions.{name}", "a fusion cannot be named like a backbone")
            )
        unknown = [part for part in parts if part not in extracted]
        if unknown:
            problems.append(
                (
                    f"features.fusions.{name}",
                    f"{unknown} not in features.backbones {sorted(extracted)}",
                )
            )
    for name in features["checkpoints"]:
        if name not in extracted:
            # Likely a typo or a backbone dropped from the list: its checkpoint would never load.
            problems.append(
                (
                    f"features.checkpoints.{name}",
                    f"{name!r} is not in features.backbones {sorted(extracted)}; "
                    "a checkpoint is only used for a backbone that is extracted",
                )
            )
    stores = extracted | set(features["fusions"])
    if "backbone" in space.dimensions:
        for value in space.dimensions["backbone"].values:
            if value not in stores:
                problems.append(
                    (
                        "space.dimensions.backbone.values",
                        f"{value!r} has no feature store; add it to features.backbones or "
                        f"features.fusions (stores: {sorted(stores)})",
                    )
                )
    steps = round(params["data"]["window_s"] * params["data"]["fps"])
    if "seq_len" in space.dimensions:
        longest = max(space.dimensions["seq_len"].values)
        if longest > steps:
            problems.append(
                (
                    "data.window_s",
                    f"the window has {steps} steps (window_s x fps) but seq_len goes up to {longest}",
                )
            )
    agents = params["agents"]
    for name, campaign in params["campaign"]["campaigns"].items():
        problem = unknown_agents(campaign["agents"], agents["llm"])
        if problem:
            problems.append((f"campaign.campaigns.{name}.agents", problem))
        try:
            space.restrict(campaign.get("limits") or {})
        except SpaceError as exc:
            problems.append((f"campaign.campaigns.{name}.{exc.key}", str(exc).split(": ", 1)[1]))
    problems += llm_name_problems(agents["llm"], agents["healing"]["diagnose_with"])
    return problems + _analysis_checks(params)


def _analysis_checks(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The baselines' campaigns are campaigns of this params file."""
    campaigns = sorted(params["campaign"]["campaigns"])
    baselines = params["analysis"]["baselines"]
    named = [("generative_campaign", baselines["generative_campaign"])]
    named += [("pool_campaigns", name) for name in baselines["pool_campaigns"] or []]
    return [
        (f"analysis.baselines.{key}", f"{name!r} is not a campaign (campaigns: {campaigns})")
        for key, name in named
        if name is not None and name not in campaigns
    ]


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _explain(error: jsonschema.ValidationError) -> list[tuple[str, str]]:
    """Turn one schema error into (key path, reason) pairs a person can act on."""
    path = list(error.absolute_path)
    kind, schema_part, instance = error.validator, error.schema, error.instance
    if kind == "additionalProperties" and isinstance(instance, Mapping):
        allowed = sorted(schema_part.get("properties", {}))
        known = set(allowed)
        hint = (
            f"allowed keys: {', '.join(allowed)}" if allowed else "this section takes no keys yet"
        )
        return [
            (_path([*path, key]), f"unknown key; {hint}") for key in instance if key not in known
        ]
    if kind == "required":
        missing = [key for key in error.validator_value if key not in instance]
        return [(_path([*path, key]), "missing required key") for key in missing]
    if "propertyNames" in error.schema_path and kind == "enum":  # a key, not a value
        return [(_path([*path, instance]), f"unknown name; allowed: {error.validator_value}")]
    if kind == "enum":
        return [(_path(path), f"{instance!r} is not allowed; allowed: {error.validator_value}")]
    if kind == "type":
        expected = error.validator_value
        return [(_path(path), f"expected {expected}, got {type(instance).__name__} ({instance!r})")]
    if "propertyNames" in error.schema_path:
        return [(_path([*path, instance]), f"bad name; it must match {error.validator_value}")]
    return [(_path(path), error.message)]
