"""The LLM research agent (paper's pi_LLM): prompt from the history, YAML back.

    provider = make_provider(ProviderSettings(...))           # providers.py: Claude or Gemini
    policy = LLMPolicy(space, "claude", provider, template=load_template(None))
    proposals = policy.propose(history, n=5, rng=rng)
    policy.report.rejections, policy.report.calls, policy.report.prompt, policy.report.answer

One call per round. Every idea in the answer is handled on its own (see
extract.py): a malformed or out-of-space idea becomes a Rejection with its
reason and the rest go on; an idea equal to a finished or queued config is
rejected as a duplicate; configs beyond `n` are rejected as over the number
asked for. A provider fault (after the provider's retries) or an answer with
no YAML raises PolicyError, with the call recorded in the report, so the
round can go on with the other agents. Every call the provider billed is
in the report with its tokens and cost, whatever became of its answer
(empty, unreadable, all rejected). The answer is untrusted: it is bounded
and what is kept of it clipped (untrusted.py). The rng is unused: an LLM is
not seeded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..space import Space
from .context import ContextSettings, build_prompt
from .extract import ExtractionError, ideas_from_answer, parse_idea
from .history import History
from .policy import Policy, PolicyError
from .proposal import Proposal, Rejection
from .providers import LLMReply, ProviderError
from .untrusted import MAX_ANSWER_BYTES, REASON_CHARS, clip, max_ideas

SYSTEM_PROMPT = (
    "You are an ML research agent. You propose experiment configurations inside a given "
    "configuration space and answer with YAML only."
)


class LLMPolicy(Policy):
    policy = source = "llm"

    def __init__(
        self,
        space: Space,
        name: str,
        provider: Any,
        *,
        template: str,
        context: ContextSettings | None = None,
        sweep_limit: int = 8,
        round_index: int = 0,
    ):
        super().__init__(space, name)
        self.provider = provider
        self.template = template
        self.context = context or ContextSettings()
        self.sweep_limit = sweep_limit
        self.round_index = round_index

    def _propose(self, history: History, n: int, rng: np.random.Generator) -> list[Proposal]:
        prompt = build_prompt(
            self.template,
            self.space,
            history,
            agent=self.name,
            n=n,
            round_index=self.round_index,
            settings=self.context,
            sweep_limit=self.sweep_limit,
        )
        self.report.prompt = prompt
        try:
            reply = self.provider.complete(SYSTEM_PROMPT, prompt)
        except ProviderError as exc:
            message = clip(str(exc), REASON_CHARS)
            record = {"error": message, "error_kind": exc.kind, "attempts": exc.attempts}
            if exc.reply is not None:  # billed although it failed (e.g. an empty answer)
                record = {**_call_record(exc.reply), **record}
                self.report.answer = clip(exc.reply.text, MAX_ANSWER_BYTES)
            self.report.calls.append(record)
            self.report.error = f"provider: {message}"
            raise PolicyError(f"{self.name}: {message}") from exc
        self.report.calls.append(_call_record(reply))
        self.report.answer = clip(reply.text, MAX_ANSWER_BYTES)
        try:
            ideas = ideas_from_answer(reply.text)
        except ExtractionError as exc:
            message = clip(str(exc), REASON_CHARS)
            self.report.error = f"answer: {message}"
            raise PolicyError(f"{self.name}: {message}") from exc
        limit = max_ideas(n)
        if len(ideas) > limit:
            reason = f"the answer has {len(ideas)} ideas; only the first {limit} were read"
            self.report.rejections.append(
                Rejection(self.name, {"<ideas not read>": len(ideas) - limit}, reason)
            )
            ideas = ideas[:limit]
        return self._proposals(ideas, history, n)

    def _proposals(self, ideas: list[Any], history: History, n: int) -> list[Proposal]:
        taken = {exp.fingerprint: exp.id for exp in history.taken()}
        proposals: list[Proposal] = []
        for raw in ideas:
            idea = parse_idea(raw, self.space, history, self.sweep_limit)
            if idea.rejection:
                self._reject(raw, idea, idea.rejection)
                continue
            for config, label in idea.variants:
                name = f"{idea.idea_name} [{label}]" if label and idea.idea_name else idea.idea_name
                if config.fingerprint in taken:
                    reason = f"duplicate of {taken[config.fingerprint]} (same fingerprint)"
                    self._reject(config.to_dict(), idea, reason, fate="duplicate", name=name)
                elif len(proposals) >= n:
                    reason = f"beyond the {n} configurations asked for"
                    self._reject(config.to_dict(), idea, reason, fate="over_budget", name=name)
                else:
                    taken[config.fingerprint] = f"{self.name} idea {idea.idea_name!r}"
                    proposals.append(
                        Proposal(
                            config,
                            agent=self.name,
                            source=self.source,
                            priority=idea.priority,
                            rationale=idea.rationale,
                            parent_id=idea.parent_id,
                            idea_name=name,
                        )
                    )
        return proposals

    def _reject(self, raw, idea, reason: str, fate: str = "invalid", name=None) -> None:
        self.report.rejections.append(
            Rejection(
                agent=self.name,
                idea=raw,
                reason=clip(reason, REASON_CHARS),
                source=self.source,
                idea_name=name or idea.idea_name,
                priority=idea.priority,
                rationale=idea.rationale,
                fate=fate,
            )
        )


def _call_record(reply: LLMReply) -> dict[str, Any]:
    """What is kept of a call: never the key (the provider never returns it)."""
    return {
        "provider": reply.provider,
        "model": reply.model,
        "input_tokens": reply.input_tokens,
        "output_tokens": reply.output_tokens,
        "cost_usd": reply.cost_usd,
        "attempts": reply.attempts,
        "seconds": reply.seconds,
    }
