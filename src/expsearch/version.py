"""The code version recorded in every artefact (feature stores, metrics).

    code_version()  # "0.1.0+g1a2b3c4" ("+dirty" when the checkout has changes)

Falls back to the package version alone outside a git checkout.
"""

from __future__ import annotations

import subprocess
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


@cache
def code_version() -> str:
    try:
        base = version("expsearch")
    except PackageNotFoundError:
        base = "0+unknown"
    root = Path(__file__).resolve().parents[2]
    try:
        commit = _git(root, "rev-parse", "--short=10", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return base
    return f"{base}+g{commit}" + (".dirty" if dirty else "")
