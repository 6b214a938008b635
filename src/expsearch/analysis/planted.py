"""A planted experiment table: rows shaped like the dataset's, with a known AP model.

    frame = planted_table(space, n=10_469, seed=0)   # a DataFrame with the dataset's columns

For benchmarks and tests of the analyses, never for results: configs come
from the space's sampler, and AP follows a planted model (a backbone effect
and an encoder effect that dominate, small learning-rate and focal effects,
Gaussian noise), so an analysis can be checked against what was planted.
Two LLM agents alternate in the search campaign ("agents"), 8 % of its rows
are sweep variants, 3 % of runs fail, the code version changes once (at
30 % of the rows, the "bug fix": AP jumps), and a generative campaign
("random") of `n_random` rows follows the same model.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from ..space import Space

START = datetime(2026, 2, 10, tzinfo=UTC)


def planted_ap(config, rng: np.random.Generator, *, fixed: bool) -> float:
    """The planted AP of one config: architecture first, hyperparameters second."""
    backbones = {"vjepa2": 0.12, "siglip2": 0.05, "dinov3_l": 0.03, "convnext": 0.0}
    encoders = {"zipformer": 0.04, "retnet": 0.03, "hybrid": 0.02, "bimamba": 0.01}
    ap = (
        0.70
        + backbones.get(config.get("backbone"), -0.05)
        + encoders.get(config.get("encoder"), 0.0)
    )
    ap -= 0.01 * abs(np.log10(config.get("learning_rate", 1e-3)) + 3.5)
    if config.get("loss") == "focal":
        ap += 0.004 * min(config.get("focal_gamma", 0.0), 3.0)
    ap += rng.normal(0.0, 0.02) + (0.0 if fixed else -0.04)
    return float(np.clip(ap, 0.0, 1.0))


def planted_table(
    space: Space, n: int, seed: int = 0, *, n_random: int = 172, failure_rate: float = 0.03
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    configs = space.sample(n + n_random, seed=seed)
    rows = []
    for i, config in enumerate(configs):
        search = i < n
        fixed = not search or i >= int(0.3 * n)
        failed = rng.random() < failure_rate
        finished = START + timedelta(minutes=int(i if search else i - n) * 3)
        ap = None if failed else planted_ap(config, rng, fixed=fixed)
        rows.append(
            {
                "id": f"e{i:05d}",
                "campaign": "agents" if search else "random",
                "round": (i if search else i - n) // 16,
                "agent": ("claude", "gemini")[i % 2] if search else "random",
                "policy": "llm" if search else "random",
                "source": ("sweep" if rng.random() < 0.08 else "llm") if search else "random",
                "parent_id": None,
                "config": json.dumps(dict(config)),
                "status": "failed" if failed else "ok",
                "error_class": "crash" if failed else None,
                "val_ap": ap,
                "test_ap": None if ap is None else float(np.clip(ap + rng.normal(0, 0.02), 0, 1)),
                "finished": finished.isoformat(),
                "code_version": "v2" if fixed else "v1",
                "device_seconds": float(rng.uniform(180, 600)),
                "llm_input_tokens": 3000.0 if search else 0.0,
                "llm_output_tokens": 800.0 if search else 0.0,
                "llm_cost_usd": 0.1 if search else 0.0,
            }
        )
    return pd.DataFrame(rows)
