"""The code version recorded in artefacts names the commit of this checkout."""

from __future__ import annotations

import re
import subprocess

from expsearch.version import code_version

from .conftest import ROOT


def test_code_version_names_the_commit():
    head = subprocess.run(
        ["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    if head.returncode != 0:  # not a git checkout (e.g. an sdist): the package version alone
        assert re.fullmatch(r"[\w.]+", code_version())
        return
    assert re.fullmatch(rf"0\.1\.0\+g{head.stdout.strip()}(\.dirty)?", code_version())
