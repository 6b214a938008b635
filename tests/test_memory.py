"""Freed training memory stays in the process (training/memory.py)."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

CHURN = """
import resource, sys, torch
from expsearch.training.memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
    assert keep_freed_memory()  # once per process, then cached
def step():  # a training step's pattern: tensors of about 1 MiB, all freed at its end
    tensors = [torch.ones(256 * 1024) for _ in range(8)]
    del tensors
for _ in range(5):  # the heap grows to the working set over the first steps
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True, timeout=120
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "mallopt"),
    reason="glibc's malloc only",
)
def test_freed_memory_is_reused_without_page_faults():
    default, kept = _faults("default"), _faults("keep")
    # 20 steps of 8 MiB: glibc gives the memory back after each and faults 2,048 pages
    # in again; kept, the next step reuses it.
    assert default > 20 * 1000, default
    assert kept < 200, kept
