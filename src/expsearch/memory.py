"""Keep memory that a process frees for its next use, instead of giving it back.

    keep_freed_memory()     # once per process (cached, returns whether set)

Training (`fit_config`) and the clip renderer (`data.synthetic.generate`,
in its worker processes, or in its caller's process with one worker) call
it: both allocate and free the same large arrays over and over.

Why: a training step allocates and frees the same few hundred tensors every
step, many of them 0.3-1 MB at width 64. glibc's malloc serves blocks above
its adaptive mmap threshold with fresh mmaps and trims the top of its heap
once twice that threshold is free, so a process whose largest block so far
was about 1 MB gave such memory back after every step and faulted it in
again: 400-3,600 page faults per step, about 2 microseconds each on these
machines, plus the zeroed pages evicting the cache. With the mmap threshold
at glibc's maximum (32 MiB) and trimming only above 1 GiB, the next step
reuses the freed blocks. Measured in one process, alternating the two
settings every few steps (batch 64, seq_len 20): a step 1.06-1.23x faster
(BiMamba 1.12, Zipformer 1.11, RetNet 1.06, xLSTM 1.23, Hybrid 1.07; faults
per step 400-3,600 -> 50-300). In a whole shard the gain is smaller, as its
first evaluation (512-clip batches) already raises glibc's threshold: 12
experiments of a `make run` campaign in one process faulted 37,000-55,000
times without and 27,000-28,000 with, in the same time within noise. The
setting makes the steady state certain rather than dependent on what a
process allocated first (and makes step benchmarks measure it). The cost: a
process keeps its peak heap until it exits, which training reaches every
step anyway.

The renderer builds each clip from full-size temporaries (0.7 M elements of
the ground, 3.7 M of the frames: 3-15 MB each) that glibc gave back and
faulted in again for every clip: about 8,500 page faults a clip by default,
91 with the setting, for the same bytes.

A no-op (returning False) where malloc is not glibc's (macOS, musl).
"""

from __future__ import annotations

import ctypes
from functools import cache

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 1 << 30


@cache
def keep_freed_memory() -> bool:
    """Set glibc malloc's thresholds for this process; True if it took them."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
