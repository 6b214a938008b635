"""Agents from their settings: names to policy objects, and the healer.

    agents = build_agents(["rules", "tpe", "claude"], settings, space, round_index=3)
    healer = build_healer(settings, space)
    fallback = build_fallback(settings, space)   # None, or e.g. a rules agent `fallback_rules`

`settings` is an AgentSettings (expsearch.settings parses it from params.yaml's
`agents` section). Built-in names: random, tpe, rules. Any other name must be
an LLM agent in `agents.llm`; its key comes from the environment variable
that entry names. When that variable is not set, a rules agent named
`<name>_rules` stands in and says so in its report (the rules agent is the
default without keys), so a laptop run works without keys and never
pretends an LLM answered. The fallback (`agents.fallback`, a built-in
policy or None) fills a round's unused budget (plan.py); it is named
`fallback_<policy>` so that its rows never pass for an agent's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..space import Space
from .context import ContextSettings, load_template
from .healing import Healer
from .llm import LLMPolicy
from .names import BUILT_IN, llm_name_problems, unknown_agents
from .plan import PlanSettings
from .policy import Policy, RandomPolicy
from .providers import Provider, ProviderSettings, make_provider
from .rules import RulesPolicy
from .tpe import TPEPolicy


class AgentConfigError(ValueError):
    """An agent name or setting that cannot be used."""


@dataclass(frozen=True)
class HealingSettings:
    plans: Mapping[str, tuple[str, ...]]
    max_attempts: int = 2
    diagnose_with: str | None = None  # an LLM agent's name, or None: the plan's first choice


@dataclass(frozen=True)
class AgentSettings:
    """Everything the agents and the round planner read (params.yaml `agents`)."""

    plan: PlanSettings
    context: ContextSettings
    prompt_template: str | None
    rules: Mapping[str, Any]  # RulesPolicy keyword arguments (top_k, explore_fraction)
    tpe: Mapping[str, Any]  # TPEPolicy keyword arguments (params agents.tpe)
    llm: Mapping[str, ProviderSettings]
    healing: HealingSettings
    fallback: str | None = "rules"  # fills a round's unused budget; None: nothing does

    def __post_init__(self) -> None:
        problems = llm_name_problems(self.llm, self.healing.diagnose_with)
        if self.fallback not in (None, *BUILT_IN):
            problems.append(
                ("agents.fallback", f"{self.fallback!r} is not one of {list(BUILT_IN)}")
            )
        if problems:
            raise AgentConfigError("; ".join(f"{key}: {reason}" for key, reason in problems))


def build_agents(
    names: Sequence[str],
    settings: AgentSettings,
    space: Space,
    *,
    round_index: int = 0,
    environ: Mapping[str, str] = os.environ,
) -> list[Policy]:
    problem = unknown_agents(names, settings.llm)
    if problem:
        raise AgentConfigError(f"{problem} (LLM agents are defined under agents.llm)")
    return [build_agent(name, settings, space, round_index, environ) for name in names]


def build_agent(
    name: str,
    settings: AgentSettings,
    space: Space,
    round_index: int = 0,
    environ: Mapping[str, str] = os.environ,
) -> Policy:
    if name in BUILT_IN:
        return _built_in(name, settings, space, name)
    provider_settings = settings.llm[name]
    provider = _provider(provider_settings, environ)
    if provider is None:
        stand_in = _rules(space, settings, f"{name}_rules")
        stand_in.note = f"stands in for {name}: {provider_settings.api_key_env} is not set"
        return stand_in
    return LLMPolicy(
        space,
        name,
        provider,
        template=load_template(settings.prompt_template),
        context=settings.context,
        sweep_limit=settings.plan.sweep.max_variants,
        round_index=round_index,
    )


def build_fallback(settings: AgentSettings, space: Space) -> Policy | None:
    if settings.fallback is None:
        return None
    return _built_in(settings.fallback, settings, space, f"fallback_{settings.fallback}")


def _built_in(kind: str, settings: AgentSettings, space: Space, name: str) -> Policy:
    if kind == "random":
        return RandomPolicy(space, name)
    if kind == "tpe":
        return TPEPolicy(space, name, **settings.tpe)
    return _rules(space, settings, name)


def _provider(settings: ProviderSettings, environ: Mapping[str, str]) -> Provider | None:
    """An LLM agent's provider when its key is set (blank counts as not set,
    as make_provider judges it)."""
    if not environ.get(settings.api_key_env, "").strip():
        return None
    return make_provider(settings, environ)


def _rules(space: Space, settings: AgentSettings, name: str) -> RulesPolicy:
    return RulesPolicy(space, name, banned_recent=settings.context.banned_recent, **settings.rules)


def build_healer(
    settings: AgentSettings, space: Space, environ: Mapping[str, str] = os.environ
) -> Healer:
    healing = settings.healing
    diagnose = None
    if healing.diagnose_with is not None:
        provider = _provider(settings.llm[healing.diagnose_with], environ)
        if provider is not None:
            diagnose = llm_diagnosis(provider)
    return Healer(space, healing.plans, healing.max_attempts, diagnose)


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
