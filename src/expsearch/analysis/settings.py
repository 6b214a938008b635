"""The analyses' settings (params.yaml `analysis:`), as one typed object.

    settings = expsearch.settings.analysis_settings(params["analysis"])
    settings.variance_kwargs()   # keyword arguments of analysis.variance.variance

Parsed once at the edge (expsearch.settings); `analysis.run` hands each family
its keyword arguments from here, so a knob in params.yaml reaches exactly one
place and none is silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AnalysisSettings:
    metric: str = "val_ap"
    seed: int = 0
    min_points: int = 5
    a_max: float | None = 1.0
    subset: Mapping[str, Any] | None = None  # select_subset keywords; None: no subset
    # baselines
    pool_campaigns: tuple[str, ...] | None = None
    generative_campaign: str | None = "random"
    at_n: tuple[int, ...] = (50, 100, 500)
    pool_permutations: int = 1000
    tpe_seeds: int = 1
    tpe_startup_trials: int = 10
    tpe_multivariate: bool = True
    # convergence
    bootstrap: int = 1000
    permutations: int = 1000
    # dynamics
    window: int = 50
    step: int = 10
    innovation_window: int = 50
    # variance
    groups: tuple[str, ...] = ("backbone", "encoder")
    min_group_size: int = 10
    balanced_per_group: int = 10
    balanced_repeats: int = 100
    within: Mapping[str, Any] = field(default_factory=lambda: {"backbone": None})
    within_factor: str = "encoder"
    two_way: tuple[str, ...] = ("backbone", "encoder")
    top_k: int = 5
    enrichment_top: int = 100
    enrichment_source: str = "sweep"
    attribution_column: str = "agent"
    representativeness_dimension: str = "encoder"
    # cost
    cost_by: str = "policy"

    def baselines_kwargs(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "pool_campaigns": self.pool_campaigns,
            "generative_campaign": self.generative_campaign,
            "at_n": self.at_n,
            "permutations": self.pool_permutations,
            "tpe_seeds": self.tpe_seeds,
            "tpe_startup_trials": self.tpe_startup_trials,
            "tpe_multivariate": self.tpe_multivariate,
            "a_max": self.a_max,
            "min_points": self.min_points,
            "seed": self.seed,
        }

    def convergence_kwargs(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "subset": dict(self.subset) if self.subset else None,
            "bootstrap": self.bootstrap,
            "permutations": self.permutations,
            "seed": self.seed,
            "min_points": self.min_points,
        }

    def dynamics_kwargs(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "window": self.window,
            "step": self.step,
            "innovation_window": self.innovation_window,
            "min_points": self.min_points,
        }

    def variance_kwargs(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "groups": self.groups,
            "min_group_size": self.min_group_size,
            "balanced_per_group": self.balanced_per_group,
            "balanced_repeats": self.balanced_repeats,
            "within": dict(self.within),
            "within_factor": self.within_factor,
            "two_way": self.two_way,
            "top_k": self.top_k,
            "enrichment_top": self.enrichment_top,
            "enrichment_source": self.enrichment_source,
            "attribution_column": self.attribution_column,
            "representativeness_dimension": self.representativeness_dimension,
            "seed": self.seed,
        }

    def cost_kwargs(self) -> dict[str, Any]:
        return {"by": self.cost_by}


def parse_analysis(section: Mapping[str, Any]) -> AnalysisSettings:
    """Typed settings from a checked `analysis:` section."""
    base = section.get("baselines", {})
    tpe = base.get("tpe", {})
    conv = section.get("convergence", {})
    dyn = section.get("dynamics", {})
    var = section.get("variance", {})
    subset = {key: value for key, value in section.get("subset", {}).items() if value is not None}
    pools = base.get("pool_campaigns")
    return AnalysisSettings(
        metric=section["metric"],
        seed=section["seed"],
        min_points=section["min_points"],
        a_max=section["a_max"],
        subset=subset or None,
        pool_campaigns=tuple(pools) if pools is not None else None,
        generative_campaign=base["generative_campaign"],
        at_n=tuple(base["at_n"]),
        pool_permutations=base["permutations"],
        tpe_seeds=tpe["seeds"],
        tpe_startup_trials=tpe["n_startup_trials"],
        tpe_multivariate=tpe["multivariate"],
        bootstrap=conv["bootstrap"],
        permutations=conv["permutations"],
        window=dyn["window"],
        step=dyn["step"],
        innovation_window=dyn["innovation_window"],
        groups=tuple(var["groups"]),
        min_group_size=var["min_group_size"],
        balanced_per_group=var["balanced"]["per_group"],
        balanced_repeats=var["balanced"]["repeats"],
        within={var["within"]["column"]: var["within"]["value"]},
        within_factor=var["within"]["factor"],
        two_way=tuple(var["two_way"]),
        top_k=var["top_k"],
        enrichment_top=var["enrichment"]["top"],
        enrichment_source=var["enrichment"]["source"],
        attribution_column=var["representativeness"]["column"],
        representativeness_dimension=var["representativeness"]["dimension"],
        cost_by=section["cost"]["by"],
    )
