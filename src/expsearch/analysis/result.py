"""How every analysis reports: a JSON-able dict with a status, never a bare NaN.

    insufficient("a fit needs 5 points", n=3)   # {"status": "insufficient_data", "reason": ..., "n": 3}
    ok(F=3.2, p=0.04)                            # {"status": "ok", "F": 3.2, "p": 0.04}
    jsonable(result)                             # numpy scalars and arrays -> Python; NaN refused
    jsonable(result, digits=10)                  # and every float to 10 significant digits

A statistic that cannot be computed from the data at hand (too few points, one
group only, a flat curve) is an `insufficient_data` result with a reason, so a
reader never mistakes a NaN for a number. `jsonable` raises if a NaN or an
infinity slipped into a result that claims to be ok.

The analyses write their results with `digits=10` (`run.run_family`): the
last bits of a least-squares fit depend on the CPU's BLAS code path (an
ANOVA's sums of squares differed by 1e-15 relative between an AVX-512 and an
AVX2 machine), so full precision would make a release's outputs, and `dvc
repro`'s check that a rerun reproduces them byte for byte, specific to one
kind of CPU. Ten digits are beyond what any table or figure shows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

INSUFFICIENT = "insufficient_data"


def insufficient(reason: str, **facts: Any) -> dict[str, Any]:
    return {"status": INSUFFICIENT, "reason": reason, **facts}


def ok(**values: Any) -> dict[str, Any]:
    return {"status": "ok", **values}


def is_ok(result: Mapping[str, Any]) -> bool:
    return result.get("status") == "ok"


def jsonable(value: Any, where: str = "result", digits: int | None = None) -> Any:
    """Plain Python for JSON, floats rounded to `digits` significant digits if given; a
    non-finite float is an error naming where it is."""
    if isinstance(value, Mapping):
        return {str(key): jsonable(item, f"{where}.{key}", digits) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item, f"{where}[{i}]", digits) for i, item in enumerate(value)]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), where, digits)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(
                f"{where} is {value}: a statistic must be a number or insufficient_data"
            )
        return value if digits is None else float(f"{value:.{digits}g}")
    return value
