"""The package's C kernels, compiled on first use and loaded with ctypes.

    lib = native.kernel("swoosh", swoosh_forward=(3, 1))  # 3 pointers, 1 int64
    if lib is not None: lib.swoosh_forward(x.data_ptr(), params.data_ptr(), y.data_ptr(), n)

Why C through ctypes rather than a torch C++ extension: the kernels take raw float
pointers and need no torch headers, so a build is one `cc` call of about a second
(torch's extension headers take most of a minute), with nothing to install beyond
a C compiler. The shared object is cached per source (with the package's headers),
compiler, flags and CPU under `$EXPSEARCH_CACHE` (default
`~/.cache/expsearch/native`); concurrent first uses (two shards starting together)
each build into a temporary file and rename it into place, so a reader never sees a
half-written library.

`EXPSEARCH_NATIVE=0` turns every kernel off (the PyTorch fallbacks run instead):
for A/B benchmarks and to rule the kernels out when debugging. A failed build is
not an error: a warning names the compiler's message and the fallback runs.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from functools import cache
from pathlib import Path

import torch

SOURCES = Path(__file__).resolve().parent
# -ffast-math lets gcc vectorise expf through glibc's libmvec. It is given to the compile
# step only: linked with -ffast-math, gcc <= 12 adds crtfastmath.o to the shared object,
# whose constructor would switch the whole process to flush-denormals-to-zero.
# -march=native (the state loops run 8 or 16 wide instead of 4: the scan's backward 2x
# faster) is why the cache key includes the CPU's identity.
COMPILE_FLAGS = ["-O3", "-ffast-math", "-march=native", "-fPIC", "-std=c99"]
LINK_FLAGS = ["-shared", "-lm"]


def enabled() -> bool:
    return os.environ.get("EXPSEARCH_NATIVE", "1") != "0"


def cache_dir() -> Path:
    root = os.environ.get("EXPSEARCH_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "expsearch" / "native"


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _cpu_identity() -> str:
    """The CPU model and instruction-set flags: a home directory shared by cluster nodes of
    different CPUs keeps one build per kind, never one built for another CPU."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))


def _build(source: Path, target: Path, compiler: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        obj, lib = Path(tmp) / "kernel.o", Path(tmp) / target.name
        for command in (
            [compiler, *COMPILE_FLAGS, "-c", str(source), "-o", str(obj)],
            [compiler, str(obj), "-o", str(lib), *LINK_FLAGS],
        ):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                raise OSError(f"{' '.join(command)} failed:\n{done.stderr.strip()[-2000:]}")
        os.replace(lib, target)


@cache
def library(name: str) -> ctypes.CDLL | None:
    """The compiled `models/<name>.c`, or None (kernels disabled, no compiler, failed build)."""
    if not enabled():
        return None
    compiler = _compiler()
    if compiler is None:
        warnings.warn(f"no C compiler found: {name} runs its PyTorch fallback", stacklevel=2)
        return None
    source = SOURCES / f"{name}.c"
    key = hashlib.sha256(
        "\0".join(
            [
                source.read_text(),
                *(header.read_text() for header in sorted(SOURCES.glob("*.h"))),  # #included
                compiler,
                *COMPILE_FLAGS,
                *LINK_FLAGS,
                platform.machine(),
                _cpu_identity(),
            ]
        ).encode()
    ).hexdigest()[:16]
    target = cache_dir() / f"{name}-{key}.so"
    try:
        if not target.exists():
            _build(source, target, compiler)
        return ctypes.CDLL(str(target))
    except OSError as error:
        warnings.warn(f"{name} kernel unavailable, PyTorch fallback used: {error}", stacklevel=2)
        return None


@cache
def kernel(name: str, **signatures: tuple[int, int]) -> ctypes.CDLL | None:
    """`library(name)` with argument types set: signatures[function] = (pointers, int64s)."""
    lib = library(name)
    if lib is not None:
        for function, (pointers, sizes) in signatures.items():
            getattr(lib, function).argtypes = [ctypes.c_void_p] * pointers + [
                ctypes.c_int64
            ] * sizes
            getattr(lib, function).restype = None
    return lib


def cpu_float32(*tensors) -> bool:
    """Whether every tensor given (None: an absent optional one) is float32 on the CPU:
    what the kernels take."""
    return all(
        t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors if t is not None
    )


def row_stride(x: torch.Tensor) -> int | None:
    """The stride between the (batch, step) rows of x (B, T, C) if a kernel can read it in
    place (channels contiguous, rows evenly spaced, as a half of a wider projection is);
    None: it must be made contiguous first."""
    if x.dim() == 3 and x.stride(2) == 1 and x.stride(0) == x.shape[1] * x.stride(1):
        return x.stride(1)
    return None


def pointers(*tensors) -> list[int | None]:
    """Data addresses for a kernel call (None, a NULL, for an absent optional tensor)."""
    return [None if t is None else t.data_ptr() for t in tensors]
