"""The `expsearch` command line: space, validate, fingerprint, sample, check-params."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from expsearch.cli import main
from expsearch.yamlio import dump_yaml, load_yaml

from .conftest import ROOT

PARAMS = str(ROOT / "params.yaml")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([*argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def config_file(tmp_path, focal_config) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(focal_config))
    return path


def test_space_prints_json_with_discrete_cells(capsys):
    code, out, _ = run(capsys, "space", "--params", PARAMS)
    assert code == 0 and json.loads(out)["discrete_cells"] == 108_000


def test_space_markdown_to_file(capsys, tmp_path):
    out_file = tmp_path / "t" / "space.md"
    code, out, _ = run(
        capsys, "space", "--params", PARAMS, "--format", "markdown", "--out", str(out_file)
    )
    assert code == 0 and out == ""
    assert "**108,000**" in out_file.read_text()


def test_validate_valid_config(capsys, config_file):
    code, out, _ = run(capsys, "validate", str(config_file), "--params", PARAMS)
    assert code == 0 and "valid" in out


def test_validate_bad_config_exits_2_naming_the_key(capsys, tmp_path, focal_config):
    path = tmp_path / "bad.yaml"
    path.write_text(dump_yaml({**focal_config, "pooling": "cls"}))
    code, out, err = run(capsys, "validate", str(path), "--params", PARAMS)
    assert code == 2 and out == ""
    assert "pooling" in err and "'cls' is not allowed" in err and str(path) in err


def test_validate_malformed_yaml_exits_2(capsys, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("backbone: [vjepa2\n")
    code, _, err = run(capsys, "validate", str(path), "--params", PARAMS)
    assert code == 2 and "malformed YAML" in err


def test_validate_with_bad_params_exits_2(capsys, tmp_path, config_file, params):
    params["space"]["dimensions"]["epochs"]["type"] = "integer"
    bad_params = tmp_path / "params.yaml"
    bad_params.write_text(dump_yaml(params))
    code, _, err = run(capsys, "validate", str(config_file), "--params", str(bad_params))
    assert code == 2 and "space.dimensions.epochs.type" in err


def test_fingerprint_agrees_with_the_library(capsys, config_file, space, focal_config):
    code, out, _ = run(capsys, "fingerprint", str(config_file), "--params", PARAMS)
    assert code == 0 and out.strip() == space.validate(focal_config).fingerprint


def test_sample_prints_n_valid_configs(capsys, space):
    code, out, _ = run(capsys, "sample", "--n", "5", "--seed", "3", "--params", PARAMS)
    configs = load_yaml(out)
    assert code == 0 and len(configs) == 5
    assert [space.validate(c) for c in configs] == space.sample(5, seed=3)


def test_sample_rejects_negative_n(capsys):
    code, _, err = run(capsys, "sample", "--n", "-1", "--params", PARAMS)
    assert code == 2 and "--n" in err


def test_check_params(capsys):
    assert run(capsys, "check-params", "--params", PARAMS)[0] == 0


def test_console_script_is_installed(tmp_path, config_file):
    """The installed `expsearch` entry point, as a user would call it."""
    exe = Path(sys.executable).parent / "expsearch"
    assert exe.exists(), "pip install -e . should have installed the console script"
    ok = subprocess.run(
        [str(exe), "fingerprint", str(config_file)], cwd=ROOT, capture_output=True, text=True
    )
    assert ok.returncode == 0 and len(ok.stdout.strip()) == 16
    missing = subprocess.run(
        [str(exe), "space"], cwd=tmp_path, capture_output=True, text=True, env=os.environ
    )
    assert missing.returncode == 2 and "params.yaml: no such file" in missing.stderr


def test_data_synth_takes_params_and_difficulty_overrides(capsys, tmp_path, default_params):
    out = tmp_path / "synth"
    args = ["data", "synth", "--out", str(out), "--n", "2", "--speed", "0.7", "--noise", "0"]
    assert main(args) == 0
    settings = json.loads((out / "synthetic.json").read_text())
    difficulty = settings["difficulty"]
    assert difficulty["speed"] == 0.7 and difficulty["noise"] == 0.0
    # What was not given comes from params.yaml, not from library defaults.
    assert difficulty["lighting"] == default_params["data"]["synthetic"]["lighting"]
    assert len(list((out / "videos").glob("*.mp4"))) == 2
