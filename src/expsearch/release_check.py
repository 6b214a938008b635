"""Name every damaged or missing object of the DVC-tracked release and paper.

    problems = check_release(".")            # [] when all is well
    for p in problems: print(p)             # "data/release/experiments.parquet: remote
                                            #  object .../27/d471... is corrupted (md5 ...)"
    expsearch check-release                 # the same; exit 1 when anything is wrong

`dvc pull` refuses a corrupted object (the default remote has `verify = true`)
but names only the folder it could not check out; this check names the file.
It reads the hashes recorded in git (`*.dvc` files and `dvc.lock`) and rehashes
each file's object in the local cache, in a folder remote, and in the
workspace. Remotes on S3 are checked by `dvc pull` itself (with `verify`).
Outputs hashed the DVC 3 way (`hash: md5`, plain md5 of the bytes) are
checked; DVC 2's older text-normalised hashes are not.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .release import ReleaseError, dvc
from .yamlio import load_yaml_file


@dataclass(frozen=True)
class Tracked:
    path: str  # the file in the workspace, relative to the repository
    md5: str  # its recorded hash


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _object(store: Path, md5: str) -> Path:
    return store / "files" / "md5" / md5[:2] / md5[2:]


def recorded_outputs(repo: Path) -> Iterator[tuple[str, str]]:
    """(path, md5) of every cached output that git records: *.dvc files and dvc.lock."""
    # Committed or not yet (right after `expsearch release`), but not ignored.
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "--", "*.dvc"],
                            cwd=repo, capture_output=True, text=True, check=False).stdout.split()  # fmt: skip
    for dvcfile in (repo / name for name in listed):
        for out in load_yaml_file(dvcfile).get("outs", []):
            yield str((dvcfile.parent / out["path"]).relative_to(repo)), out["md5"]
    lock = repo / "dvc.lock"
    if lock.exists():
        uncached = _uncached(repo / "dvc.yaml")
        for stage in load_yaml_file(lock).get("stages", {}).values():
            for out in stage.get("outs", []):
                if "md5" in out and out["path"] not in uncached:
                    yield out["path"], out["md5"]


def _uncached(dvc_yaml: Path) -> set[str]:
    """Outputs declared `cache: false` (kept in git, never in a DVC store)."""
    uncached = set()
    for stage in load_yaml_file(dvc_yaml).get("stages", {}).values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                if isinstance(entry, dict):
                    uncached |= {p for p, o in entry.items() if (o or {}).get("cache") is False}
    return uncached


def _expand(path: str, md5: str, stores: list[Path]) -> tuple[list[Tracked], list[str]]:
    """A directory output's files, from its manifest in the first store holding it."""
    if not md5.endswith(".dir"):
        return [Tracked(path, md5)], []
    for store in stores:
        manifest = _object(store, md5)
        if manifest.exists():
            actual = _md5(manifest) + ".dir"
            try:
                entries = json.loads(manifest.read_text())
                files = [Tracked(f"{path}/{e['relpath']}", e["md5"]) for e in entries]
            except (json.JSONDecodeError, KeyError, TypeError):
                files = None
            if actual != md5 or files is None:
                return [], [f"{path}: the folder's manifest {manifest} is corrupted "
                            f"(md5 {actual}, recorded {md5})"]  # fmt: skip
            return files, []
    where = " or ".join(str(s) for s in stores)
    return [], [f"{path}: the folder's manifest {md5} is missing from {where}"]


def folder_remote(repo: Path) -> Path | None:
    """The default remote's folder, or None when it is not a local folder."""
    try:
        name = dvc(repo, "remote", "default").strip()
        url = dvc(repo, "config", f"remote.{name}.url").strip()
    except ReleaseError:
        return None
    if "://" in url:
        return None
    return (repo / ".dvc" / url).resolve() if not Path(url).is_absolute() else Path(url)


def check_release(repo: str | Path = ".", remote: Path | None = None) -> list[str]:
    """One line per file whose object is missing or corrupted, where it is."""
    repo = Path(repo).resolve()
    remote = remote if remote is not None else folder_remote(repo)
    cache = repo / ".dvc" / "cache"
    stores = [s for s in (cache, remote) if s is not None]
    problems: list[str] = []
    for out_path, out_md5 in recorded_outputs(repo):
        files, unlisted = _expand(out_path, out_md5, stores)
        problems += unlisted
        for tracked in files:
            problems += _check_file(repo, tracked, cache, remote)
    return problems


def _check_file(repo: Path, tracked: Tracked, cache: Path, remote: Path | None) -> list[str]:
    problems = []
    for place, store in {"cache": cache, "remote": remote}.items():
        if store is None:
            continue
        obj = _object(store, tracked.md5)
        if not obj.exists():
            if place == "remote":
                problems.append(f"{tracked.path}: {place} object {obj} is missing")
            continue
        actual = _md5(obj)
        if actual != tracked.md5:
            problems.append(
                f"{tracked.path}: {place} object {obj} is corrupted "
                f"(md5 {actual}, recorded {tracked.md5})"
            )
    workspace = repo / tracked.path
    if workspace.exists() and _md5(workspace) != tracked.md5:
        problems.append(
            f"{tracked.path}: the workspace file differs from the md5 git records "
            "(changed since, or damaged: `dvc status` says which stage)"
        )
    return problems
