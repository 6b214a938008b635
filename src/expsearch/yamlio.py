"""YAML reading that agrees with how people (and LLMs) write numbers.

PyYAML follows YAML 1.1, where `3e-4` is a *string* (1.1 floats need a dot).
Configs written by hand or by an LLM use `3e-4` all the time, so every YAML
this project reads goes through `load_yaml`, which also resolves the YAML 1.2
float forms. Usage:

    data = load_yaml(text_or_stream)
    data = load_yaml_file(path)          # errors name the file and line
    data = load_untrusted_yaml(text, name="answer", max_nodes=5000, max_depth=16)

`load_untrusted_yaml` is for text nobody vouches for (an LLM's answer): it
refuses aliases and bounds the node count and nesting while composing,
before anything is built, because a few hundred bytes of nested aliases
(the "billion laughs") stand for billions of values once anything walks
them, and deep nesting exhausts Python's recursion limit.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml


class YamlError(ValueError):
    """A YAML document that cannot be parsed; the message names where."""


class UntrustedYamlError(YamlError):
    """Untrusted YAML that uses aliases or exceeds a size limit: refused, not malformed."""


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
        raise _malformed(exc, name) from exc


def _malformed(exc: yaml.YAMLError, name: str) -> YamlError:
    mark = getattr(exc, "problem_mark", None)
    where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
    problem = getattr(exc, "problem", None) or str(exc)
    return YamlError(f"{where}: malformed YAML: {problem}")


class _Refused(yaml.MarkedYAMLError):
    pass


class _BoundedLoader(_Loader):
    """_Loader that counts nodes and nesting as it composes and refuses aliases."""

    def bound(self, max_nodes: int, max_depth: int) -> None:
        self._max_nodes, self._max_depth = max_nodes, max_depth
        self._budget, self._depth = max_nodes, 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                problem="aliases (*name) are not accepted", problem_mark=event.start_mark
            )
        self._budget -= 1
        if self._budget < 0:
            raise _Refused(
                problem=f"more than {self._max_nodes} values", problem_mark=event.start_mark
            )
        if self._depth >= self._max_depth:
            raise _Refused(
                problem=f"nested deeper than {self._max_depth} levels",
                problem_mark=event.start_mark,
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_untrusted_yaml(text: str, *, name: str, max_nodes: int, max_depth: int) -> Any:
    """Parse one YAML document of at most `max_nodes` values nested at most
    `max_depth` deep, without aliases; UntrustedYamlError when refused."""
    loader = _BoundedLoader(text)
    loader.bound(max_nodes, max_depth)
    try:
        return loader.get_single_data()
    except _Refused as exc:
        mark = exc.problem_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}"
        raise UntrustedYamlError(f"{where}: refused: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise _malformed(exc, name) from None
    finally:
        loader.dispose()


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
