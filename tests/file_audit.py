"""What each workflow job opened, against what its rule declares.

    records = audit_records(audit_dir)        # one per job that ran under job_log
    problems = undeclared_access(record)      # [] when the job kept to its rule

Jobs record their file opens when EXPSEARCH_AUDIT_DIR is set (expsearch.joblog).
A job may read its declared inputs (files, or anything under a declared
directory), its own outputs, and its scratch: the folder its rule names in
`params.scratch`, and hidden entries beside its outputs (atomic-write
temporaries, an extraction's resume chunks). It may write its outputs (by
way of such temporaries), its logs and its scratch. Files outside the
working directory (the interpreter, the venv) and the project's own code
(src/, workflow/, .snakemake/) are not the rule's business.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

IGNORED_TOP = {"src", "workflow", ".snakemake"}


def audit_records(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def _relative(path: str, cwd: str) -> PurePosixPath | None:
    pure = PurePosixPath(path)
    if pure.is_absolute():
        try:
            pure = pure.relative_to(cwd)
        except ValueError:
            return None  # outside the working directory
    return None if not pure.parts or pure.parts[0] in IGNORED_TOP else pure


def _under(path: PurePosixPath, folders: list[PurePosixPath]) -> bool:
    return any(path == folder or folder in path.parents for folder in folders)


ATOMIC_TEMP = re.compile(r"^\.(?P<name>.+)\.[^.]+\.tmp$")  # expsearch.atomic's temporaries


def _beside_output(path: PurePosixPath, outputs: list[PurePosixPath]) -> bool:
    """A hidden entry in an output's folder (or below it), where an atomic
    write's temporary counts only when the file it becomes is an output."""
    for output in outputs:
        try:
            rest = path.relative_to(output.parent)
        except ValueError:
            continue
        if not rest.parts or not rest.parts[0].startswith("."):
            continue
        temp = ATOMIC_TEMP.match(rest.parts[0]) if len(rest.parts) == 1 else None
        if temp is None or output.parent / temp["name"] in outputs:
            return True
    return False


def undeclared_access(record: dict[str, Any]) -> list[str]:
    declared = {key: [PurePosixPath(p) for p in record[key]] for key in
                ("input", "output", "log", "scratch")}  # fmt: skip
    problems = []
    for raw, mode in record["opened"]:
        path = _relative(raw, record["cwd"])
        if path is None:
            continue
        own = (
            path in declared["output"]
            or _under(path, declared["output"])  # inside a directory output
            or _under(path, declared["scratch"])
            or _beside_output(path, declared["output"])
        )
        if mode.startswith("r") and "+" not in mode:
            allowed = own or path in declared["input"] or _under(path, declared["input"])
        else:
            allowed = own or path in declared["log"]
        if not allowed:
            problems.append(f"{record['rule']}: {'reads' if mode.startswith('r') else 'writes'} "
                            f"{path}, which its rule does not declare")  # fmt: skip
    return problems
