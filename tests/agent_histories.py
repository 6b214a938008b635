"""Histories for agent tests: sampled configs with a synthetic AP landscape.

    rows = history_rows(space, n=40, seed=0, failed_every=7)
    history = History.from_rows(rows, space)

The AP is a fixed function of the config (vjepa2 and zipformer score
higher, learning rates near 3e-4 score higher), so "the leader" is a stable
fact a test can assert about.
"""

from __future__ import annotations

import math

from expsearch.agents.history import History
from expsearch.space import Space

BACKBONE_BONUS = {"vjepa2": 0.15, "dinov3_l": 0.08}
ENCODER_BONUS = {"zipformer": 0.1, "retnet": 0.05}


def landscape(config) -> float:
    lr_term = -0.05 * abs(math.log10(config["learning_rate"] / 3e-4))
    ap = 0.6 + BACKBONE_BONUS.get(config["backbone"], 0) + ENCODER_BONUS.get(config["encoder"], 0)
    return round(ap + lr_term, 6)


def history_rows(space: Space, n: int = 40, seed: int = 0, failed_every: int = 7) -> list[dict]:
    rows = []
    for i, config in enumerate(space.sample(n, seed=seed)):
        failed = failed_every and i % failed_every == failed_every - 1
        rows.append(
            {
                "id": f"e{i:03d}",
                "config": config.to_dict(),
                "status": "failed" if failed else "ok",
                "val_ap": None if failed else landscape(config),
                "error_class": "oom" if failed else None,
                "error": "torch.OutOfMemoryError: CUDA out of memory" if failed else None,
                "agent": "rules",
                "source": "random",
                "round": i // 8,
            }
        )
    return rows


def make_history(space: Space, **kwargs) -> History:
    return History.from_rows(history_rows(space, **kwargs), space)
