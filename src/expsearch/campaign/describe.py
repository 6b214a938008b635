"""One-line accounts of a round's plan and of the dataset, for logs and the console.

print(describe_plan(plan))        # per agent: errors, notes, tokens, cost; kept and shards
print(describe_summary(summary))  # per campaign: finished/experiments and the best config
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def describe_plan(plan: Mapping[str, Any]) -> str:
    lines = [
        f"{entry['agent']} ({entry['policy']}): error={entry['error']} note={entry['note']} "
        f"tokens={entry['input_tokens']}/{entry['output_tokens']} cost=${entry['cost_usd']:.4f}"
        for entry in plan["agent_log"]
    ]
    kept = sum(row["fate"] == "kept" for row in plan["rows"])
    lines.append(
        f"[{plan['campaign']} round {plan['round']}] proposed: {kept} kept of "
        f"{len(plan['rows'])} candidates, in {len(plan['shards'])} shards {plan['shards']}"
    )
    return "\n".join(lines)


def _show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def describe_summary(summary: Mapping[str, Any]) -> str:
    lines = []
    for name, campaign in summary.items():
        best = campaign["best"]
        shown = (
            f"best val AP {_show(best['val_ap'])} (test {_show(best['test_ap'])})"
            if best
            else "none"
        )
        lines.append(
            f"[{name}] {campaign['finished']}/{campaign['experiments']} finished; {shown}; "
            f"LLM ${campaign['llm_cost_usd']:.4f} in {campaign['llm_calls']} calls"
        )
    return "\n".join(lines)
