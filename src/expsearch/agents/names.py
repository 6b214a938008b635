"""Agent names: the one check of who may propose, shared by params.py and the registry.

    unknown_agents(["rules", "claude"], llm=["claude"])  # None, or why not
    llm_name_problems(llm, diagnose_with)                # [(key path, reason), ...]

Built-in names: random, tpe, rules. Any other name must be an LLM agent
under `agents.llm`. Kept free of heavy imports so that checking params.yaml
stays fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

BUILT_IN = ("random", "tpe", "rules")


def agent_names(llm: Iterable[str]) -> list[str]:
    return [*BUILT_IN, *llm]


def unknown_agents(names: Sequence[str], llm: Iterable[str]) -> str | None:
    """Why `names` cannot be a team of agents (unknown or repeated), or None."""
    known = agent_names(llm)
    unknown = [name for name in names if name not in known]
    if unknown:
        return f"unknown agent(s) {unknown}; expected agents of {sorted(known)}"
    if len(set(names)) != len(names):
        return f"agents repeat: {list(names)}"
    return None


def llm_name_problems(llm: Iterable[str], diagnose_with: str | None) -> list[tuple[str, str]]:
    """LLM agents named like built-ins or like the fallback (`fallback_<policy>`,
    whose rows must never pass for an agent's), and a healing diagnosis by no
    LLM agent."""
    llm = list(llm)
    problems = [
        (f"agents.llm.{name}", "random, tpe and rules are built-in agents, not LLM names")
        for name in llm
        if name in BUILT_IN
    ]
    problems += [
        (f"agents.llm.{name}", "names starting with fallback_ are the fallback's")
        for name in llm
        if name.startswith("fallback_")
    ]
    if diagnose_with is not None and diagnose_with not in llm:
        problems.append(
            (
                "agents.healing.diagnose_with",
                f"{diagnose_with!r} is not an LLM agent; expected null or one of {sorted(llm)}",
            )
        )
    return problems
