"""A few lines a person reads in a job log: what one analysis found.

print(describe_result(result))   # result: what run.run_family returned
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def describe_result(result: Mapping[str, Any]) -> str:
    family = result.get("analysis", "analysis")
    if result.get("status") != "ok":
        return f"{family}: {result.get('status')}: {result.get('reason')}"
    lines = [f"{family} of {result.get('data', 'the table')}:"]
    lines += DESCRIBE.get(family, lambda _: [])(result)
    return "\n".join(lines)


def _num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def _fit(fit: Mapping[str, Any]) -> str:
    if fit.get("status") != "ok":
        return f"no fit ({fit.get('reason')})"
    bound = " (a at its bound)" if fit.get("bound_binds") else ""
    return f"a={_num(fit['a'])} b={_num(fit['b'])} c={_num(fit['c'])} R2={_num(fit['r2'])}{bound}"


def _baselines(result: Mapping[str, Any]) -> list[str]:
    lines = []
    for name, policy in result["policies"].items():
        if policy.get("status") != "ok":
            lines.append(f"  {name:10s} {policy.get('reason')}")
            continue
        at = " ".join(f"@{n}={_num(v)}" for n, v in policy["ap_at"].items() if v is not None)
        lines.append(
            f"  {name:10s} n={policy['n']} best={_num(policy['best'])} {at}; {_fit(policy['fit'])}"
        )
    return lines


def _convergence(result: Mapping[str, Any]) -> list[str]:
    lines = []
    for part in ("full", "subset"):
        if part in result:
            body = result[part]
            fit = body.get("bounded", body)
            lines.append(
                f"  {part}: {body.get('counts', {}).get('finished', '?')} finished; {_fit(fit)}"
            )
    return lines


def _dynamics(result: Mapping[str, Any]) -> list[str]:
    combined = result.get("combined", {})
    h = combined.get("H", {})
    rate = combined.get("change_rate", {})
    innovation = combined.get("innovation", {})
    return [
        f"  H final {_num(h.get('final'))} over {h.get('cells_seen', '?')} cells; "
        f"arch/train change-rate ratio {_num(rate.get('ratio'), 2)}",
        f"  innovation alpha {_num(innovation.get('alpha'))} "
        f"(se {_num(innovation.get('alpha_se'))}); agents: {', '.join(result.get('agent_names', []))}",
    ]


def _variance(result: Mapping[str, Any]) -> list[str]:
    anova = result.get("anova", {})
    if anova.get("status") != "ok":
        return [f"  ANOVA: {anova.get('reason')}"]
    return [
        f"  ANOVA over {anova['n_groups']} groups, n={anova['n']}: F={_num(anova['F'], 2)} "
        f"p={anova['p']:.3g} eta2={_num(anova['eta_squared'])}"
    ]


def _cost(result: Mapping[str, Any]) -> list[str]:
    overall = result["overall"]
    calls = result.get("llm_calls") or {}
    return [
        f"  {overall['experiments']} experiments, {_num(overall['device_hours'], 2)} device-hours, "
        f"{_num(overall['finished_per_device_hour'], 1)} finished per device-hour; "
        f"LLM calls {calls.get('calls', 0)} costing ${_num(calls.get('cost_usd', 0.0), 2)}"
    ]


DESCRIBE: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "baselines": _baselines,
    "convergence": _convergence,
    "dynamics": _dynamics,
    "variance": _variance,
    "cost": _cost,
}
