"""Command-line tools installed beside this interpreter (dvc, snakemake).

subprocess.run([tool("dvc"), "status"])   # the venv's dvc, even if PATH lacks the venv
"""

from __future__ import annotations

import sys
from pathlib import Path


def tool(name: str) -> str:
    """The executable `name` of this environment, else `name` for PATH to find."""
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else name
