"""Agents from params.yaml: names to policy objects, and the healer.

    agents = build_agents(["rules", "tpe", "claude"], params, space, round_index=3)
    healer = build_healer(params, space)

Built-in names: random, tpe, rules. Any other name must be an LLM agent in
`agents.llm`; its key comes from the environment variable that entry names.
When that variable is not set, a rules agent named `<name>_rules` stands in
and says so in its report (the rules agent is the default without keys), so
a laptop run works without keys and never pretends an LLM answered.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..space import Space
from .context import ContextSettings, load_template
from .healing import Healer
from .llm import LLMPolicy
from .policy import Policy, RandomPolicy
from .providers import Provider, ProviderSettings, make_provider
from .rules import RulesPolicy
from .tpe import TPEPolicy

BUILT_IN = ("random", "tpe", "rules")


class AgentConfigError(ValueError):
    """An agent name or setting in params.yaml that cannot be used."""


def agent_names(params: Mapping[str, Any]) -> list[str]:
    return [*BUILT_IN, *params["agents"]["llm"]]


def build_agents(
    names: Sequence[str],
    params: Mapping[str, Any],
    space: Space,
    *,
    round_index: int = 0,
    environ: Mapping[str, str] = os.environ,
) -> list[Policy]:
    if len(set(names)) != len(names):
        raise AgentConfigError(f"agents repeat: {list(names)}")
    return [build_agent(name, params, space, round_index, environ) for name in names]


def build_agent(
    name: str,
    params: Mapping[str, Any],
    space: Space,
    round_index: int = 0,
    environ: Mapping[str, str] = os.environ,
) -> Policy:
    agents = params["agents"]
    if name == "random":
        return RandomPolicy(space)
    if name == "tpe":
        return TPEPolicy(space, **agents["tpe"])
    if name == "rules":
        return _rules(space, agents, "rules")
    if name not in agents["llm"]:
        raise AgentConfigError(
            f"unknown agent {name!r}; expected one of {agent_names(params)} "
            "(LLM agents are defined under agents.llm)"
        )
    settings, provider = _llm_provider(name, params, environ)
    if provider is None:
        stand_in = _rules(space, agents, f"{name}_rules")
        stand_in.note = f"stands in for {name}: {settings.api_key_env} is not set"
        return stand_in
    return LLMPolicy(
        space,
        name,
        provider,
        template=load_template(agents["prompt_template"]),
        context=ContextSettings.from_params(agents["context"]),
        sweep_limit=int(agents["sweep"]["max_variants"]),
        round_index=round_index,
    )


def _llm_provider(
    name: str, params: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[ProviderSettings, Provider | None]:
    """An LLM agent's provider settings, and its provider when its key is set
    (blank counts as not set, as make_provider judges it)."""
    settings = ProviderSettings.from_dict(f"agents.llm.{name}", params["agents"]["llm"][name])
    if not environ.get(settings.api_key_env, "").strip():
        return settings, None
    return settings, make_provider(settings, environ)


def _rules(space: Space, agents: Mapping[str, Any], name: str) -> RulesPolicy:
    return RulesPolicy(
        space, name, banned_recent=int(agents["context"]["banned_recent"]), **agents["rules"]
    )


def build_healer(
    params: Mapping[str, Any], space: Space, environ: Mapping[str, str] = os.environ
) -> Healer:
    healing = params["agents"]["healing"]
    diagnose = None
    if healing["diagnose_with"] is not None:
        name = healing["diagnose_with"]
        if name not in params["agents"]["llm"]:
            raise AgentConfigError(
                f"agents.healing.diagnose_with: {name!r} is not an agent under agents.llm"
            )
        _, provider = _llm_provider(name, params, environ)
        if provider is not None:
            diagnose = llm_diagnosis(provider)
    return Healer(space, healing["plans"], int(healing["max_attempts"]), diagnose)


def llm_diagnosis(provider: Any):
    """A diagnose callable for Healer: shows the trace and the offered
    remediation names, returns the answer text (Healer only takes a name)."""

    def diagnose(trace: str, error_class: str, options: list[str]) -> str:
        prompt = (
            f"An ML training run failed ({error_class}). Its trace ends with:\n\n"
            f"```\n{trace[-3000:]}\n```\n\nChoose the one remediation most likely to fix it, "
            f"from: {', '.join(options)}. Answer with the name only."
        )
        return provider.complete("You diagnose failed ML training runs.", prompt).text

    return diagnose
