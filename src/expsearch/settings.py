"""Typed settings from params.yaml: the one module that reads its sections.

    params = load_params("params.yaml")                 # checked (params.py)
    data = data_settings(params["data"])                 # DataSettings
    features = feature_settings(params["features"])      # FeatureSettings
    training = training_settings(params["training"], device="cpu")
    agents = agent_settings(params["agents"])            # AgentSettings
    campaign = campaign_settings(params, "agents")       # CampaignSettings (space, agents, training)
    campaigns = all_campaigns(params)                    # name -> CampaignSettings
    analysis = analysis_settings(params["analysis"])     # AnalysisSettings

A job parses what it needs once, at its edge (a workflow script from
`snakemake.params`, a CLI command from `--params` plus its options), and
hands typed objects to the library, which never sees the raw mapping.
Parsing assumes checked params (Snakemake checks them when the workflow
loads, `load_params` when the CLI does), so it converts and does not
re-validate; the objects validate their own invariants where they have any.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .agents.context import ContextSettings
from .agents.plan import PlanSettings
from .agents.providers import ProviderSettings
from .agents.registry import AgentSettings, HealingSettings
from .agents.sweeps import SweepSettings
from .analysis.settings import AnalysisSettings, parse_analysis
from .campaign.settings import CampaignSettings
from .hashing import sha256_text
from .space import Space
from .training.settings import TrainSettings


@dataclass(frozen=True)
class SynthSettings:
    """The synthetic generator (`data.synthetic`)."""

    n: int
    seed: int
    variant: str
    duration_s: float
    difficulty: Any  # data.synthetic.Difficulty
    workers: int


@dataclass(frozen=True)
class DataSettings:
    """Where clips come from and how they are windowed and split (`data`)."""

    source: str
    root: str
    labels: str
    videos: str
    fps: float
    window_s: float
    fractions: Mapping[str, float]
    split_seed: int
    synthetic: SynthSettings


@dataclass(frozen=True)
class FeatureSettings:
    """Backbone feature extraction (`features`)."""

    root: str
    weights: str
    backbones: tuple[str, ...]
    fusions: Mapping[str, tuple[str, ...]]
    batch_size: int
    device: str
    seed: int
    max_skipped_fraction: float  # of the clips; more skipped fails the extraction
    decode: str  # shared: read the decoded-frames cache | per_backbone: decode the videos
    frames_root: str  # folder of the decoded-frames cache (features.frames)
    # backbone -> local checkpoint folder or Hugging Face id (pretrained weights); a
    # backbone not named loads its registry id (features.checkpoints)
    checkpoints: Mapping[str, str] = dataclasses.field(default_factory=dict)


def synth_settings(synthetic: Mapping[str, Any]) -> SynthSettings:
    from .data.synthetic import Difficulty  # the generator's package is heavy; data jobs only

    knobs = {field.name: synthetic[field.name] for field in dataclasses.fields(Difficulty)}
    return SynthSettings(
        n=int(synthetic["n"]),
        seed=int(synthetic["seed"]),
        variant=str(synthetic["variant"]),
        duration_s=float(synthetic["duration_s"]),
        difficulty=Difficulty(**knobs),
        workers=int(synthetic["workers"]),
    )


def data_settings(data: Mapping[str, Any]) -> DataSettings:
    return DataSettings(
        source=data["source"],
        root=str(data["root"]),
        labels=data["labels"],
        videos=data["videos"],
        fps=float(data["fps"]),
        window_s=float(data["window_s"]),
        fractions={name: float(data["split"][name]) for name in ("train", "val", "test")},
        split_seed=int(data["split"]["seed"]),
        synthetic=synth_settings(data["synthetic"]),
    )


def feature_settings(features: Mapping[str, Any]) -> FeatureSettings:
    return FeatureSettings(
        root=str(features["root"]),
        weights=features["weights"],
        backbones=tuple(features["backbones"]),
        fusions={name: tuple(parts) for name, parts in features["fusions"].items()},
        batch_size=int(features["batch_size"]),
        device=str(features["device"]),
        seed=int(features["seed"]),
        max_skipped_fraction=float(features["max_skipped_fraction"]),
        decode=str(features["decode"]),
        frames_root=str(features["frames_root"]),
        checkpoints={name: str(source) for name, source in features["checkpoints"].items()},
    )


def training_settings(training: Mapping[str, Any], **overrides: Any) -> TrainSettings:
    values = {**training, **{key: value for key, value in overrides.items() if value is not None}}
    values["horizons_s"] = tuple(float(h) for h in values["horizons_s"])
    return TrainSettings(**values)


def space_settings(params: Mapping[str, Any]) -> Space:
    return Space.from_dict(params["space"])


def plan_settings(agents: Mapping[str, Any]) -> PlanSettings:
    sweep, auto = agents["sweep"], agents["sweep"]["auto"]
    return PlanSettings(
        ideas_per_agent=int(agents["ideas_per_agent"]),
        budget=int(agents["budget_per_round"]),
        sweep=SweepSettings(
            max_variants=int(sweep["max_variants"]),
            auto_priorities=tuple(auto["priorities"]),
            learning_rate_factors=tuple(float(f) for f in auto["learning_rate_factors"]),
            focal_gammas=tuple(float(g) for g in auto["focal_gammas"]),
        ),
        jaccard_threshold=float(agents["dedup"]["jaccard_threshold"]),
        continuous_tolerance=agents["dedup"]["continuous_tolerance"],
    )


def agent_settings(agents: Mapping[str, Any]) -> AgentSettings:
    healing = agents["healing"]
    return AgentSettings(
        plan=plan_settings(agents),
        context=ContextSettings(**{key: int(value) for key, value in agents["context"].items()}),
        prompt_template=agents["prompt_template"],
        rules={key: value for key, value in agents["rules"].items()},
        tpe={key: value for key, value in agents["tpe"].items()},
        llm={
            name: ProviderSettings.from_dict(f"agents.llm.{name}", raw)
            for name, raw in agents["llm"].items()
        },
        healing=HealingSettings(
            plans={key: tuple(names) for key, names in healing["plans"].items()},
            max_attempts=int(healing["max_attempts"]),
            diagnose_with=healing["diagnose_with"],
        ),
        fallback=agents["fallback"],
    )


def campaign_settings(params: Mapping[str, Any], name: str) -> CampaignSettings:
    """One campaign, from the `space`, `agents`, `training` and `campaign` sections."""
    section = params["campaign"]
    if name not in section["campaigns"]:
        raise ValueError(
            f"unknown campaign {name!r}; params.yaml defines {sorted(section['campaigns'])}"
        )
    raw = section["campaigns"][name]
    agents = agent_settings(params["agents"])
    plan = dataclasses.replace(
        agents.plan,
        budget=int(raw["budget_per_round"]),
        ideas_per_agent=int(raw["ideas_per_agent"]),
    )
    return CampaignSettings(
        name=name,
        agents=tuple(raw["agents"]),
        rounds=int(raw["rounds"]),
        shards=int(raw["shards"]),
        # Different campaigns draw differently even with one campaign seed.
        seed=int(section["seed"]) + int(sha256_text(name)[:8], 16),
        space=space_settings(params).restrict(raw.get("limits") or {}),
        # A campaign's own fallback (null included) overrides agents.fallback.
        agent_settings=dataclasses.replace(
            agents, plan=plan, fallback=raw.get("fallback", agents.fallback)
        ),
        training=training_settings(params["training"]),
        lag=int(raw.get("lag", 0)),
        streams=int(section.get("streams", 1)),
    )


def all_campaigns(params: Mapping[str, Any]) -> dict[str, CampaignSettings]:
    return {name: campaign_settings(params, name) for name in params["campaign"]["campaigns"]}


def analysis_settings(analysis: Mapping[str, Any], **overrides: Any) -> AnalysisSettings:
    """The `analysis` section; `overrides` (a CLI's options) replace single fields."""
    return dataclasses.replace(parse_analysis(analysis), **overrides)
