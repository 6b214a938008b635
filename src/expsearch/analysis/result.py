"""How every analysis reports: a JSON-able dict with a status, never a bare NaN.

    insufficient("a fit needs 5 points", n=3)   # {"status": "insufficient_data", "reason": ..., "n": 3}
    ok(F=3.2, p=0.04)                            # {"status": "ok", "F": 3.2, "p": 0.04}
    jsonable(result)                             # numpy scalars and arrays -> Python; NaN refused

A statistic that cannot be computed from the data at hand (too few points, one
group only, a flat curve) is an `insufficient_data` result with a reason, so a
reader never mistakes a NaN for a number. `jsonable` raises if a NaN or an
infinity slipped into a result that claims to be ok.
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


def jsonable(value: Any, where: str = "result") -> Any:
    """Plain Python for JSON; a non-finite float is an error naming where it is."""
    if isinstance(value, Mapping):
        return {str(key): jsonable(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), where)
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
        return value
    return value
