"""YAML reading: exponent floats as numbers, errors that say where."""

from __future__ import annotations

import pytest
import yaml

from expsearch.yamlio import YamlError, load_yaml, load_yaml_file


@pytest.mark.parametrize(
    ("text", "value"),
    [("3e-4", 3e-4), ("1E+2", 100.0), ("-2.5e-3", -2.5e-3), (".5e1", 5.0), ("1.0e-5", 1e-5)],
)
def test_exponent_floats_are_numbers(text, value):
    assert yaml.safe_load(f"x: {text}")["x"] in (value, text)  # PyYAML alone may give a str
    assert load_yaml(f"x: {text}") == {"x": value}


def test_other_scalars_keep_their_types():
    assert load_yaml("a: 3\nb: '3e-4'\nc: e5\nd: true\ne: 1.5") == {
        "a": 3,
        "b": "3e-4",
        "c": "e5",
        "d": True,
        "e": 1.5,
    }


def test_the_stock_safe_loader_is_left_untouched():
    load_yaml("x: 1e-3")
    assert yaml.safe_load("x: 1e-3") == {"x": "1e-3"}


def test_malformed_yaml_names_line_and_column(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\nb: [2\n")
    with pytest.raises(YamlError, match=r"c.yaml:3:1: malformed YAML"):
        load_yaml_file(path)


def test_no_python_objects():
    with pytest.raises(YamlError):
        load_yaml("x: !!python/object/apply:os.system ['true']")
