"""The `expsearch` command line.

    expsearch space [--params FILE] [--format json|markdown] [--out FILE]
                                                     summary of C (discrete_cells, ...)
    expsearch validate CONFIG.yaml [--params FILE]   exit 0 if valid, 2 naming the bad key
    expsearch fingerprint CONFIG.yaml [--params FILE]
    expsearch sample --n N --seed S [--params FILE]  N configs as a YAML list
    expsearch check-params [--params FILE]           validate params.yaml only

Exit status: 0 success, 2 bad input (params, config or YAML), with the reason
on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .atomic import atomic_write_text
from .params import load_params
from .space import ConfigError, Space, summary_markdown
from .yamlio import dump_yaml, load_yaml_file

EXIT_BAD_INPUT = 2


def _space(args: argparse.Namespace) -> Space:
    return Space.from_params(load_params(args.params))


def _load_config(args: argparse.Namespace):
    space = _space(args)
    return space.validate(load_yaml_file(args.config))


def cmd_space(args: argparse.Namespace) -> int:
    summary = _space(args).summary()
    if args.format == "json":
        text = json.dumps(summary, indent=2) + "\n"
    else:
        text = summary_markdown(summary)
    if args.out:
        atomic_write_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    config = _load_config(args)
    print(f"{args.config}: valid (fingerprint {config.fingerprint})")
    return 0


def cmd_fingerprint(args: argparse.Namespace) -> int:
    print(_load_config(args).fingerprint)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    if args.n < 0:
        raise ValueError(f"--n must be >= 0, got {args.n}")
    configs = _space(args).sample(args.n, seed=args.seed)
    sys.stdout.write(dump_yaml([config.to_dict() for config in configs]))
    return 0


def cmd_check_params(args: argparse.Namespace) -> int:
    load_params(args.params)
    print(f"{args.params}: valid")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="expsearch", description="LLM-guided combinatorial experiment search."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument(
            "--params", default="params.yaml", help="params file (default: %(default)s)"
        )
        cmd.set_defaults(func=func)
        return cmd

    space = add("space", cmd_space, "print a summary of the configuration space")
    space.add_argument("--format", choices=["json", "markdown"], default="json")
    space.add_argument("--out", help="write to this file (atomically) instead of stdout")
    add("validate", cmd_validate, "check that a config YAML is a point of the space").add_argument(
        "config"
    )
    add("fingerprint", cmd_fingerprint, "print the stable fingerprint of a config").add_argument(
        "config"
    )
    sample = add("sample", cmd_sample, "print N uniformly sampled configs as YAML")
    sample.add_argument("--n", type=int, required=True, help="how many configs")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    add("check-params", cmd_check_params, "validate params.yaml against its schema")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:  # ParamsError, ConfigError and YamlError are ValueErrors
        where = f"{args.config}: " if isinstance(exc, ConfigError) else ""
        print(f"expsearch {args.command}: error: {where}{exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    raise SystemExit(main())
