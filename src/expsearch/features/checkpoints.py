"""Where each backbone's pretrained checkpoint is (a local folder or the Hugging Face
cache), and what the workflow checks and declares of it before any job runs.

    one = resolve_checkpoint("dinov2_b", "/data/ckpt/dinov2-base")  # a folder, a hub id,
    one.folder, one.input_size                                     # or None: the registry's
    found = check_checkpoints(["vjepa2", "dinov2_b"], {"dinov2_b": "/data/ckpt/dinov2-base"})
    found = find_checkpoints(backbones, weights, checkpoints)  # the same; {} for random weights
    sizes = input_sizes(["vjepa2", "dinov2_b"], "pretrained", found=found)  # {name: side}
    found["dinov2_b"].files                        # a folder's files: its extraction's inputs
    check_clip_lengths(found, fps=5.0, window_s=6.0)  # video checkpoints: trained that long?
    with_files(one)                                # a hub id's cached folder, once loaded

`features.checkpoints` maps a backbone to a folder (written by `save_pretrained` or
`hf download <id> --local-dir <folder>`: config.json beside the weights) or to a
Hugging Face id; a backbone not named uses its registry id (`specs.BACKBONES`). A
source that is an existing folder, or looks like a path (starts with /, . or ~, or
has more than one /), is a folder; anything else is a hub id.

Nothing here loads weights: the workflow finds every checkpoint when it builds the
DAG, so that a checkpoint that cannot be had, or one that would be fed longer clips
than it was trained on, stops `snakemake -n` rather than a GPU job; so that the
decoded-frames cache is sized from each checkpoint's own files; and so that an
extraction declares the files it loads (new weights in a folder rerun it). A hub
id is looked up in the local cache (HF_HUB_CACHE, or HF_HOME/hub). Offline
(HF_HUB_OFFLINE=1) a hub id must be there with its weights; online a missing registry
id is fine (from_pretrained downloads it later), and another id's small JSON files are
downloaded now, since its input size is in them. huggingface_hub reads HF_HUB_OFFLINE
and HF_HUB_CACHE when it is imported, as transformers' from_pretrained does: both see
the same settings. Only this module's functions import huggingface_hub, so the
workflow does not pay for it with random weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .preprocessing import (
    CONFIG,
    PROCESSOR_FILES,
    check_frames_per_clip,
    read_json,
    trained_frames,
)
from .specs import BACKBONES, input_size

# What from_pretrained loads weights from (single file or sharded index, either format).
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "check_checkpoints",
    "check_clip_lengths",
    "find_checkpoints",
    "input_sizes",
    "resolve_checkpoint",
    "with_files",
]


class CheckpointError(OSError):
    """A checkpoint that cannot be had; names the backbone, the folder or id, and how
    to fetch it. An OSError, as from_pretrained's own failures are."""


@dataclass(frozen=True)
class Checkpoint:
    """One backbone's checkpoint, found but not loaded."""

    backbone: str
    source: str  # as configured: a folder or a hub id (the registry's by default)
    local: bool  # the source is a folder, not a hub id
    folder: Path | None  # its files: the folder or the cached snapshot; None: not downloaded

    @property
    def registry(self) -> bool:
        """The registry's own checkpoint, whose width and input size the registry knows."""
        return not self.local and self.source == BACKBONES[self.backbone].hf_id

    @property
    def load_path(self) -> str:
        """What from_pretrained is given: the folder, or the hub id (so that it looks
        in the cache, or downloads, by its own rules)."""
        return str(self.folder) if self.local else self.source

    @property
    def input_size(self) -> int:
        """The side the extractor squashes frames to: the registry's for its own id,
        else what the checkpoint's files say (`preprocessing.checkpoint_input_size`)."""
        if self.registry:
            return input_size(self.backbone, "pretrained")
        if self.folder is None:  # resolve_checkpoint never leaves another id without files
            raise ValueError(f"{self.backbone}: {self.source!r} has no files to size it from")
        return input_size(self.backbone, "pretrained", self.folder)

    @property
    def files(self) -> tuple[Path, ...]:
        """A folder checkpoint's files that from_pretrained and the preprocessing check
        read: config.json, the processor config, the weights (a sharded index and its
        shards). The workflow declares them, so new weights in the folder rerun the
        extraction. Empty for a hub id: its cached snapshot moves with every upstream
        commit and fills in as from_pretrained downloads, which would rerun extractions
        for nothing; the store's index records the id instead."""
        if not self.local or self.folder is None:
            return ()
        names = [CONFIG, *PROCESSOR_FILES, *WEIGHT_FILES, *_shards(self.folder)]
        return tuple(self.folder / n for n in names if (self.folder / n).is_file())

    @property
    def frames_per_clip(self) -> int | None:
        """The clip length a video checkpoint was trained on, from its config.json;
        None when its files do not say or are not downloaded yet."""
        return trained_frames(self.folder) if self.folder is not None else None


def _shards(folder: Path) -> list[str]:
    """The weight files that a sharded checkpoint's index names."""
    names = set()
    for index in (name for name in WEIGHT_FILES if name.endswith(".index.json")):
        if (folder / index).is_file():
            names.update(read_json(folder / index).get("weight_map", {}).values())
    return sorted(names)


def _looks_like_path(source: str) -> bool:
    return source.startswith(("/", ".", "~")) or source.count("/") > 1 or "\\" in source


def _fetch_hint(name: str, repo_id: str) -> str:
    return (
        f"Fetch it where there is network access, into a Hugging Face cache that you then "
        f"copy to this machine's HF_HUB_CACHE (`hf download {repo_id}`), or into a folder "
        f"(`hf download {repo_id} --local-dir <folder>`) that you name in "
        f"features.checkpoints.{name}."
    )


def _has_weights(folder: Path) -> bool:
    return any((folder / name).is_file() for name in WEIGHT_FILES)


def _folder(name: str, source: str) -> Checkpoint:
    path = Path(source).expanduser()
    where = f"checkpoint folder {source!r}"
    if str(path.resolve()) != source:  # relative to the working directory: say where that is
        where += f" ({path.resolve()})"
    hint = (
        f"Put a Hugging Face checkpoint there (config.json and the weights), e.g. `hf "
        f"download {BACKBONES[name].hf_id} --local-dir {path}`, or point "
        f"features.checkpoints.{name} at the folder that holds one."
    )
    if not path.is_dir():
        raise CheckpointError(f"{name}: {where} does not exist. {hint}")
    if not (path / CONFIG).is_file():
        raise CheckpointError(f"{name}: {where} has no {CONFIG}. {hint}")
    if not _has_weights(path):
        raise CheckpointError(
            f"{name}: {where} has {CONFIG} but no weights ({' or '.join(WEIGHT_FILES)}). {hint}"
        )
    missing = [shard for shard in _shards(path) if not (path / shard).is_file()]
    if missing:
        raise CheckpointError(
            f"{name}: {where} lacks {len(missing)} of the weight shards its index names "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}). {hint}"
        )
    return Checkpoint(name, source, local=True, folder=path)


def _cached(repo_id: str, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename)
    return Path(found) if isinstance(found, str) else None  # else unknown or known absent


def _download(name: str, repo_id: str, filename: str, optional: bool = False) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, filename))
    except EntryNotFoundError as exc:
        if optional:
            return None
        raise CheckpointError(
            f"{name}: cannot download {filename} of {repo_id!r}: {exc}. {_fetch_hint(name, repo_id)}"
        ) from exc
    except OSError as exc:  # no such repo, no network, no access: say which checkpoint
        raise CheckpointError(
            f"{name}: cannot download {filename} of {repo_id!r}: {exc}. Without network "
            f"access set HF_HUB_OFFLINE=1 and fetch the checkpoint first. "
            f"{_fetch_hint(name, repo_id)}"
        ) from exc


def _hub(name: str, repo_id: str) -> Checkpoint:
    from huggingface_hub import constants
    from huggingface_hub.errors import HFValidationError

    try:
        config = _cached(repo_id, CONFIG)
    except HFValidationError as exc:
        raise CheckpointError(
            f"{name}: checkpoint {repo_id!r} is neither a folder nor a Hugging Face id "
            f"({exc}); give an existing folder or an id like {BACKBONES[name].hf_id!r}"
        ) from exc
    if config is not None:
        folder = config.parent
        if constants.HF_HUB_OFFLINE and not _has_weights(folder):
            raise CheckpointError(
                f"{name}: checkpoint {repo_id!r} is in the Hugging Face cache "
                f"({constants.HF_HUB_CACHE}) without its weights, and HF_HUB_OFFLINE=1 "
                f"forbids downloading them. {_fetch_hint(name, repo_id)}"
            )
        return Checkpoint(name, repo_id, local=False, folder=folder)
    if constants.HF_HUB_OFFLINE:
        raise CheckpointError(
            f"{name}: checkpoint {repo_id!r} is not a folder here and not in the Hugging "
            f"Face cache ({constants.HF_HUB_CACHE}), and HF_HUB_OFFLINE=1 forbids "
            f"downloading it. {_fetch_hint(name, repo_id)}"
        )
    if repo_id == BACKBONES[name].hf_id:  # from_pretrained downloads it; the registry sizes it
        return Checkpoint(name, repo_id, local=False, folder=None)
    # Another id's input size is in its files: fetch the small JSON ones now.
    folder = _download(name, repo_id, CONFIG).parent
    for filename in PROCESSOR_FILES:
        _download(name, repo_id, filename, optional=True)
    return Checkpoint(name, repo_id, local=False, folder=folder)


def resolve_checkpoint(name: str, source: str | None = None) -> Checkpoint:
    """Find backbone `name`'s checkpoint `source` (a folder or a hub id; None: the
    registry's id) without loading it. Raises CheckpointError when it cannot be had:
    a folder that is missing or lacks config.json or weights; a hub id that is not
    in the cache, or lacks its weights there, when offline; another hub id whose
    config cannot be downloaded when online."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {list(BACKBONES)}")
    source = str(source) if source else BACKBONES[name].hf_id
    if Path(source).expanduser().is_dir() or _looks_like_path(source):
        return _folder(name, source)
    return _hub(name, source)


def with_files(found: Checkpoint) -> Checkpoint:
    """`found` once from_pretrained has loaded it: for a hub id, its cached folder,
    with its processor config fetched when online (from_pretrained fetches only the
    model's files; a repo without a processor config is fine)."""
    if found.local:
        return found
    from huggingface_hub import constants

    config = _cached(found.source, CONFIG)
    if config is None:  # not cached although loaded: from_pretrained was given another cache
        return found
    if not constants.HF_HUB_OFFLINE and not any(
        _cached(found.source, filename) for filename in PROCESSOR_FILES
    ):
        for filename in PROCESSOR_FILES:
            _download(found.backbone, found.source, filename, optional=True)
    return dataclasses.replace(found, folder=config.parent)


def check_checkpoints(
    backbones: Iterable[str], checkpoints: Mapping[str, str] | None = None
) -> dict[str, Checkpoint]:
    """{backbone: its Checkpoint} for `checkpoints` ({backbone: folder or hub id};
    backbones not named use the registry's id). Raises one CheckpointError that lists
    every checkpoint that cannot be had."""
    backbones = list(backbones)
    checkpoints = dict(checkpoints or {})
    stray = sorted(set(checkpoints) - set(backbones))
    if stray:
        raise ValueError(f"checkpoints for {stray}, which are not among the backbones {backbones}")
    found, problems = {}, []
    for name in backbones:
        try:
            found[name] = resolve_checkpoint(name, checkpoints.get(name))
        except CheckpointError as exc:
            problems.append(str(exc))
    if problems:
        raise CheckpointError("\n".join(problems))
    return found


def find_checkpoints(
    backbones: Iterable[str], weights: str, checkpoints: Mapping[str, str] | None = None
) -> dict[str, Checkpoint]:
    """`check_checkpoints` with pretrained weights; {} with random ones (the tiny
    configs load no files)."""
    if weights != "pretrained":
        return {}
    return check_checkpoints(backbones, checkpoints)


def input_sizes(
    backbones: Iterable[str],
    weights: str,
    checkpoints: Mapping[str, str] | None = None,
    *,
    found: Mapping[str, Checkpoint] | None = None,
) -> dict[str, int]:
    """{backbone: the side its frames are squashed to}. With pretrained weights every
    checkpoint is found first (`check_checkpoints` of `checkpoints`, which raises for a
    missing one), or given as `found` (what find_checkpoints returned); random weights
    use the tiny configs."""
    if checkpoints and found is not None:
        raise ValueError("give the checkpoints or what was found of them, not both")
    if weights != "pretrained":
        return {name: input_size(name, weights) for name in backbones}
    found = found if found is not None else check_checkpoints(backbones, checkpoints)
    return {name: found[name].input_size for name in backbones}


def check_clip_lengths(found: Mapping[str, Checkpoint], *, fps: float, window_s: float) -> None:
    """`preprocessing.check_frames_per_clip` for every found checkpoint whose config.json
    is at hand (a registry id not downloaded yet is checked when the extraction loads it)."""
    for name, checkpoint in found.items():
        check_frames_per_clip(name, checkpoint.source, checkpoint.frames_per_clip,
                              steps=round(window_s * fps),
                              frames_per_step=BACKBONES[name].frames_per_step,
                              fps=fps, window_s=window_s)  # fmt: skip
