"""Freed training memory stays in the process (expsearch/memory.py)."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys

import pytest

BLOCK = """
import ctypes, json, sys, torch
from expsearch.memory import keep_freed_memory
class Info(ctypes.Structure):  # glibc's struct mallinfo2
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
if sys.argv[1] == "keep":
    assert keep_freed_memory()
    assert keep_freed_memory()  # once per process, then cached
before = libc.mallinfo2()
block = torch.ones(1 << 20)  # 4 MiB, the size of a large activation
held = libc.mallinfo2()
del block
freed = libc.mallinfo2()
print(json.dumps({"mmapped_while_held": held.hblkhd - before.hblkhd,
                  "free_in_heap_after": freed.fordblks - before.fordblks}))
"""
MIB = 1 << 20


def _block(mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", BLOCK, mode], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(done.stdout)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "mallinfo2"),
    reason="glibc's malloc only",
)
def test_a_freed_block_stays_in_the_heap_for_the_next_step():
    default, kept = _block("default"), _block("keep")
    # glibc's default: a fresh process maps a 4 MiB block on its own and unmaps it when
    # freed, so the next step faults its pages in again.
    assert default["mmapped_while_held"] >= 4 * MIB
    assert default["free_in_heap_after"] < 4 * MIB
    # Kept: the block comes from the heap and stays there, free, for the next step.
    assert kept["mmapped_while_held"] == 0
    assert kept["free_in_heap_after"] >= 4 * MIB
