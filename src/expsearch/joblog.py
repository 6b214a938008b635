"""A workflow job's log from its first line: output, logging, warnings, tracebacks.

    with job_log(snakemake):          # first statement of every workflow script
        ...                           # imports and work go inside

Everything the job prints, logs or warns goes to the console and to the
rule's `log:` file as it happens, and an exception's traceback is written
to the log before it propagates, so `--show-failed-logs` shows why a job
failed rather than an empty file.

With EXPSEARCH_AUDIT_DIR set (a test sets it), the job also records every
file it opens, beside the files its rule declares, in
<dir>/<rule>-<pid>.json: that is how the tests check that each job reads
only what its rule declares.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

AUDIT_ENV = "EXPSEARCH_AUDIT_DIR"


class _Tee:
    """A text stream that writes to the console stream and the log file."""

    def __init__(self, console: IO[str], log: IO[str]):
        self.console, self.log = console, log

    def write(self, text: str) -> int:
        self.console.write(text)
        self.log.write(text)
        return len(text)

    def flush(self) -> None:
        self.console.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return False  # progress bars draw plain lines into a log

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)


@contextmanager
def job_log(job: Any) -> Iterator[None]:
    """Tee stdout, stderr, logging and warnings of the block to `job.log[0]`."""
    path = Path(job.log[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    opened = _audit(job)
    stdout, stderr = sys.stdout, sys.stderr
    with path.open("w", buffering=1) as log:
        sys.stdout, sys.stderr = _Tee(stdout, log), _Tee(stderr, log)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(min(root.level, logging.INFO) or logging.INFO)
        logging.captureWarnings(True)
        warnings.simplefilter("default")
        try:
            yield
        except BaseException:
            log.write(traceback.format_exc())  # the console gets it when it propagates
            raise
        finally:
            logging.captureWarnings(False)
            root.removeHandler(handler)
            sys.stdout, sys.stderr = stdout, stderr
            if opened is not None:
                _write_audit(job, opened)


def _audit(job: Any) -> list[tuple[str, str]] | None:
    if not os.environ.get(AUDIT_ENV):
        return None
    opened: list[tuple[str, str]] = []

    def hook(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            mode = args[1] if isinstance(args[1], str) else _flags_mode(args[2])
            opened.append((os.fsdecode(args[0]), mode))

    sys.addaudithook(hook)  # cannot be removed; the job's process ends soon after
    return opened


def _flags_mode(flags: int) -> str:
    return "w" if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) else "r"


def _scratch(job: Any) -> list[str]:
    """A job's declared scratch space (params.scratch: a folder it keeps between attempts)."""
    scratch = getattr(job.params, "scratch", None)
    return (
        []
        if scratch is None
        else [str(scratch)]
        if isinstance(scratch, (str, Path))
        else [str(p) for p in scratch]
    )


def _write_audit(job: Any, opened: list[tuple[str, str]]) -> None:
    folder = Path(os.environ[AUDIT_ENV])
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "rule": job.rule,
        "cwd": os.getcwd(),
        "input": [str(p) for p in job.input],
        "output": [str(p) for p in job.output],
        "log": [str(p) for p in job.log],
        "scratch": _scratch(job),
        "opened": sorted(set(opened)),
    }
    (folder / f"{job.rule}-{os.getpid()}.json").write_text(json.dumps(record, indent=1))
