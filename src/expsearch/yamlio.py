"""YAML reading that agrees with how people (and LLMs) write numbers.

PyYAML follows YAML 1.1, where `3e-4` is a *string* (1.1 floats need a dot).
Configs written by hand or by an LLM use `3e-4` all the time, so every YAML
this project reads goes through `load_yaml`, which also resolves the YAML 1.2
float forms. Usage:

    data = load_yaml(text_or_stream)
    data = load_yaml_file(path)          # errors name the file and line
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml


class YamlError(ValueError):
    """A YAML document that cannot be parsed; the message names where."""


class _Loader(yaml.SafeLoader):
    """SafeLoader plus YAML 1.2 exponent floats (`1e-5`, `3E+2`)."""


# Copy the resolver table so that yaml.SafeLoader itself is left untouched.
_Loader.yaml_implicit_resolvers = {
    key: list(value) for key, value in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(source: str | Any, *, name: str = "<yaml>") -> Any:
    """Parse one YAML document from a string or stream."""
    try:
        return yaml.load(source, Loader=_Loader)  # safe: _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlError(f"{where}: malformed YAML: {problem}") from exc


def load_yaml_file(path: str | Path) -> Any:
    """Parse a YAML file; a missing or malformed file raises with its path."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise YamlError(f"{path}: no such file") from None
    return load_yaml(text, name=str(path))


def dump_yaml(data: Any) -> str:
    """Block-style YAML with keys in the given order (callers sort if they want)."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
