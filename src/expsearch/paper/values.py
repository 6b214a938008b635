"""Every number the paper's text quotes, as LaTeX macros computed from the analyses' results.

    values = paper_values(results)        # results: {"variance": {...}, "baselines": ...,
    tex = values_tex(values)              #           "convergence": ..., "dynamics": ..., "cost": ...}
    numbers = paper_numbers(results)      # the same, as JSON numbers (null: insufficient data)

`\\NExperiments`, `\\AnovaEtaSq`, `\\ConvergenceC`, ... : each macro is one
path into one result (VALUES below), formatted with fixed digits, so the
prose never holds a hand-copied number. A value whose analysis reported
insufficient data expands to an en dash, never to an invented number.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MISSING = "--"
# macro -> (result, path of keys into it, digits; None for an integer count)
VALUES: dict[str, tuple[str, tuple[str, ...], int | None]] = {
    "NExperiments": ("variance", ("counts", "rows"), None),
    "NFinished": ("variance", ("counts", "finished"), None),
    "NFailed": ("variance", ("counts", "failed"), None),
    "BestValAP": ("variance", ("top_configs", "configs", "0", "val_ap"), 4),
    "BestTestAP": ("variance", ("top_configs", "configs", "0", "test_ap"), 4),
    "AnovaF": ("variance", ("anova", "F"), 1),
    "AnovaP": ("variance", ("anova", "p"), 3),
    "AnovaEtaSq": ("variance", ("anova", "eta_squared"), 2),
    "AnovaDfBetween": ("variance", ("anova", "df_between"), None),
    "AnovaDfWithin": ("variance", ("anova", "df_within"), None),
    "SubsetAnovaF": ("variance", ("subset", "anova", "F"), 1),
    "SubsetAnovaEtaSq": ("variance", ("subset", "anova", "eta_squared"), 2),
    "SubsetN": ("variance", ("subset", "counts", "rows"), None),
    "ValTestSpearman": ("variance", ("val_test_agreement", "rho"), 4),
    "ConvergenceC": ("convergence", ("full", "bounded", "c"), 2),
    "ConvergenceRsq": ("convergence", ("full", "bounded", "r2"), 2),
    "ConvergenceA": ("convergence", ("full", "bounded", "a"), 3),
    "SubsetConvergenceC": ("convergence", ("subset", "bounded", "c"), 2),
    "SubsetConvergenceRsq": ("convergence", ("subset", "bounded", "r2"), 2),
    "InnovationAlpha": ("dynamics", ("combined", "innovation", "alpha"), 2),
    "DeviceHours": ("cost", ("overall", "device_hours"), 2),
    "ExperimentsPerDeviceHour": ("cost", ("overall", "finished_per_device_hour"), 1),
    "LLMCostUSD": ("cost", ("llm_calls", "cost_usd"), 2),
}
AT_N_WORDS = {5: "Five", 10: "Ten", 50: "Fifty", 100: "Hundred", 500: "FiveHundred"}
POLICY_WORDS = {"search": "Search", "rand_pool": "RandPool", "tpe_pool": "TPE",
                "rand_gen": "RandGen"}  # fmt: skip


def lookup(result: Any, path: tuple[str, ...]) -> Any:
    """The value at `path` (list indices as digit strings); None if any step is missing
    or a step's `status` says the analysis had insufficient data (except its counts)."""
    for key in path:
        if isinstance(result, Mapping):
            # Counts are facts even where a statistic had too little data.
            if result.get("status", "ok") != "ok" and key != "counts":
                return None
            result = result.get(key)
        elif isinstance(result, list) and key.isdigit() and int(key) < len(result):
            result = result[int(key)]
        else:
            return None
    return result


def _format(value: Any, digits: int | None) -> str:
    if value is None or isinstance(value, bool):
        return MISSING
    if digits is None:
        return f"{int(value):,}".replace(",", "{,}")
    if value != value or value in (float("inf"), float("-inf")):
        return MISSING
    return f"{float(value):.{digits}f}"


def _number(value: Any, digits: int | None) -> int | float | None:
    if value is None or isinstance(value, bool):
        return None
    if digits is None:
        return int(value)
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return round(float(value), digits)


def _quoted(results: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[Any, int | None]]:
    """Macro name -> (raw value, digits) for every number the paper quotes."""
    quoted = {
        name: (lookup(results.get(source), path), digits)
        for name, (source, path, digits) in VALUES.items()
    }
    baselines = results.get("baselines", {})
    for key, word in POLICY_WORDS.items():
        for n, n_word in AT_N_WORDS.items():
            path = ("policies", key, "ap_at", str(n))
            quoted[f"{word}APAt{n_word}"] = (lookup(baselines, path), 4)
        quoted[f"{word}C"] = (lookup(baselines, ("policies", key, "fit", "c")), 2)
    return quoted


def paper_values(results: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Macro name -> its text, for every number the paper quotes."""
    return {name: _format(value, digits) for name, (value, digits) in _quoted(results).items()}


def paper_numbers(results: Mapping[str, Mapping[str, Any]]) -> dict[str, int | float | None]:
    """The same numbers as JSON values, rounded as quoted (DVC's metrics file)."""
    return {name: _number(value, digits) for name, (value, digits) in _quoted(results).items()}


def values_tex(values: Mapping[str, str]) -> str:
    lines = ["% Generated from results/analysis by expsearch.paper.values: do not edit."]
    lines += [rf"\newcommand{{\{name}}}{{{text}}}" for name, text in sorted(values.items())]
    return "\n".join(lines) + "\n"
