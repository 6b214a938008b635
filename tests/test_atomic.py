"""Atomic writes leave the old file or the new one, never a torn one."""

from __future__ import annotations

import os
import stat

import pytest

from expsearch.atomic import atomic_write_text


def test_writes_and_replaces(tmp_path):
    path = tmp_path / "deep" / "out.json"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert os.listdir(path.parent) == ["out.json"]  # no temporary left behind
    assert stat.S_IMODE(path.stat().st_mode) & 0o044  # readable by others, not 0600


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "old")

    def crash(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]
