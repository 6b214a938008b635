"""Writing and decoding the MP4 videos of the pipeline (PyAV / FFmpeg).

    write_video("videos/00042.mp4", frames, fps=10)        # uint8 (T, H, W, 3) RGB
    info = probe_video("videos/00042.mp4")                  # VideoInfo(duration_s, fps, ...)
    window = read_frames_at("videos/00042.mp4", [5.0, 5.2, 5.4])  # uint8 (3, H, W, 3)

`write_video` encodes H.264 (yuv420p, moov atom first) into a temporary file
beside the target and renames it into place, so a killed job never leaves half
a video. Encoding is single-threaded and x264's assembly is capped at AVX2
(`x264_cpu_cap`), so that the same frames give the same bytes: on a CPU with
AVX-512, the x264 bundled with PyAV encoded the same yuv420p frames into
different bytes (and different decoded pictures) from one call to the next,
while every cap up to AVX2, and no assembly at all, were repeatable.

`read_frames_at` decodes the file once, front to back, and returns for every
requested time the frame on screen at that time: the last frame whose
presentation time is <= t, turned upright by the video's display rotation
(90, 180 or 270 degrees; phones record portrait video that way). A file that
cannot be opened, fails to decode, or ends before the duration its header
declares raises `DecodeError` naming the file and why, in words a person can
act on: file not found, empty file (0 bytes), not a video, truncated or
damaged header, truncated (decoded k of n frames, when the file is shorter
than its own index says), corrupt.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

# Frame and request times are computed in floating point on both sides
# (e.g. 8.0 - 29 / 5 against pts * time_base); they count as equal within this.
_TIME_TOLERANCE_S = 1e-6


class DecodeError(RuntimeError):
    """A video that cannot be decoded; the message names the file and the reason."""


@dataclass(frozen=True)
class VideoInfo:
    duration_s: float
    fps: float
    n_frames: int
    width: int
    height: int


def _rate(fps: float) -> Fraction:
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, not {fps!r}")
    # limit_denominator turns 29.97 into 2997/100 and 30000/1001 into itself.
    return Fraction(fps).limit_denominator(1001)


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    *,
    codec: str = "libx264",
    crf: int = 23,
    preset: str = "medium",
) -> None:
    """Encode uint8 RGB frames (T, H, W, 3) as an MP4 at `fps`; H and W must be
    even (yuv420p halves the chroma resolution). Replaces `path` atomically.
    `crf` and `preset` are x264's quality and speed settings (other codecs:
    `crf` maps to a constant quantiser, `preset` is ignored)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must have shape (T, H, W, 3) with T >= 1, not {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, not {frames.dtype}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"frame height and width must be even for yuv420p, not {height}x{width}")
    rate = _rate(fps)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp.mp4")
    os.close(fd)
    try:
        with av.open(tmp, "w", format="mp4", options={"movflags": "+faststart"}) as container:
            # PyAV would otherwise stamp the current time into the header.
            container.metadata["creation_time"] = "1970-01-01T00:00:00Z"
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            # One thread: x264's output then depends on the frames alone, not on the machine.
            stream.codec_context.thread_count = 1
            stream.codec_context.thread_type = "NONE"
            if codec == "libx264":
                stream.options = {"crf": str(crf), "preset": preset, "threads": "1",
                                  "x264-params": f"asm={x264_cpu_cap()}"}  # fmt: skip
            elif codec == "libx265":
                stream.options = {"crf": str(crf), "preset": preset, "threads": "1"}
            else:
                # Codecs without crf (mpeg4): constant quantiser, crf 23 ~ q 4.
                stream.codec_context.qscale = True
                stream.codec_context.global_quality = max(1, round(crf / 6)) * 118
            for index, array in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
                frame.pts = index
                frame.time_base = 1 / rate
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def x264_cpu_cap() -> str:
    """The richest x264 instruction set below AVX-512 that this CPU has (see the
    module docstring); x264's names are cumulative (AVX2 includes SSE2 ... AVX)."""
    from numpy._core._multiarray_umath import __cpu_features__ as cpu

    for numpy_name, x264_name in (("AVX2", "AVX2"), ("AVX", "AVX"), ("SSE42", "SSE4.2"),
                                  ("SSSE3", "SSSE3"), ("SSE2", "SSE2")):  # fmt: skip
        if cpu.get(numpy_name):
            return x264_name
    return "0"  # no assembly: plain C


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise DecodeError(f"{path}: cannot open: file not found")
    if path.stat().st_size == 0:
        raise DecodeError(f"{path}: cannot open: empty file (0 bytes)")
    try:
        container = av.open(str(path), "r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise DecodeError(f"{path}: cannot open: {_unreadable(path, exc)}") from None
    if not container.streams.video:
        media = sorted({stream.type for stream in container.streams} & {"audio", "subtitle"})
        container.close()
        # Without any media stream, FFmpeg read too little of the header to know.
        why = f"not a video: no video stream, only {' and '.join(media)}" if media else None
        raise DecodeError(f"{path}: cannot open: {why or _unreadable(path, 'no stream found')}")
    return container


def _unreadable(path: Path, why: Exception | str) -> str:
    """Why FFmpeg cannot open a file: a video container whose header is cut
    off or damaged (a partly copied phone video) tells from its first bytes,
    anything else is not a video at all."""
    detail = getattr(why, "strerror", None) or str(why)
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError as exc:  # e.g. no permission: nothing can be said about the content
        return f"cannot read the file ({exc.strerror or exc})"
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide"):
        kind = "MP4/QuickTime"
    elif head[:4] == b"\x1a\x45\xdf\xa3":
        kind = "Matroska/WebM"
    elif head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        kind = "AVI"
    else:
        return f"not a video: FFmpeg recognises no video format in it ({detail})"
    return f"truncated or damaged {kind} file: its header cannot be read ({detail})"


def _quarter_turns(path: Path, frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that show a frame upright: phones store
    portrait video as landscape pictures plus a display rotation."""
    degrees = frame.rotation
    if degrees % 90:
        raise DecodeError(f"{path}: unsupported display rotation of {degrees} degrees")
    return (degrees // 90) % 4


def _cut_short(path: Path, stream, what: str, unsure: str) -> DecodeError:
    """A decode that ended early: `truncated` when the file is shorter than its
    own index says, else `unsure` (damaged data, or a container without an index)."""
    missing = _missing_bytes(path, stream)
    return DecodeError(f"{path}: {'truncated' if missing else unsure}: {what}{missing}")


def _missing_bytes(path: Path, stream) -> str:
    """' (the file has X of the Y bytes its index lists)' when the container's
    index points past the end of the file, the sure sign of a cut-off copy."""
    expected = max((entry.pos + entry.size for entry in stream.index_entries), default=0)
    size = path.stat().st_size
    return (
        f" (the file has {size} of the {expected} bytes its index lists)" if expected > size else ""
    )


def _declared(stream: av.video.stream.VideoStream, container) -> tuple[float, float, int]:
    """(fps, duration_s, n_frames) from the headers, with 0 for what is unknown."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    n_frames = int(stream.frames or 0)
    if not n_frames and fps and duration:
        n_frames = round(duration * fps)
    return fps, duration, n_frames


def probe_video(path: str | Path) -> VideoInfo:
    """Duration, frame rate, frame count and size from the file's headers (the
    stored size: a display rotation, applied by `read_frames_at`, may swap it)."""
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        fps, duration, n_frames = _declared(stream, container)
        width, height = stream.codec_context.width, stream.codec_context.height
    finally:
        container.close()
    if not (fps > 0 and duration > 0 and width > 0 and height > 0):
        raise DecodeError(
            f"{path}: cannot open: headers lack fps/duration/size "
            f"(fps={fps}, duration={duration}, size={width}x{height})"
        )
    return VideoInfo(duration, fps, n_frames, width, height)


def read_frames_at(path: str | Path, times_s: Sequence[float]) -> np.ndarray:
    """uint8 (len(times_s), H, W, 3) RGB, upright (H and W as displayed, after
    the display rotation): for each time t (non-decreasing), the
    last frame shown at or before t; the first frame for t before it; the last
    frame for t after it, but only when the whole file decoded (DecodeError
    otherwise). Decoding stops as soon as every requested time is served."""
    path = Path(path)
    times = np.asarray(times_s, dtype=float).reshape(-1)
    if not np.all(np.isfinite(times)):
        raise ValueError(f"requested times must be finite: {times.tolist()}")
    if np.any(np.diff(times) < 0):
        raise ValueError(f"requested times must be non-decreasing: {times.tolist()}")
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: decoding dominates long real clips
        fps, declared_s, declared_frames = _declared(stream, container)
        width, height = stream.codec_context.width, stream.codec_context.height
        of = f" of {declared_frames}" if declared_frames else ""
        out: np.ndarray | None = None
        turns = 0
        served = 0
        previous = None  # (av.VideoFrame, its RGB array or None until needed)
        previous_time = -np.inf
        n_decoded = 0
        # One converter for the whole file: `VideoFrame.to_ndarray(format=...)`
        # builds a new swscale context for every frame, which cost 30x the
        # conversion itself on small frames (3 ms against 0.1 ms at 160x96).
        reformatter = VideoReformatter()

        def rgb(entry):
            if entry[1] is None:
                converted = reformatter.reformat(
                    entry[0], width=width, height=height, format="rgb24"
                )
                array = converted.to_ndarray()
                entry[1] = np.rot90(array, turns)
            return entry[1]

        try:
            for frame in container.decode(stream):
                n_decoded += 1
                if frame.time is not None:
                    frame_time = float(frame.time)
                else:  # no timestamp: assume a constant rate
                    frame_time = (n_decoded - 1) / fps if fps else previous_time + 1e-3
                current = [frame, None]
                if out is None:
                    turns = _quarter_turns(path, frame)
                    shape = (height, width) if turns % 2 == 0 else (width, height)
                    out = np.empty((len(times), *shape, 3), dtype=np.uint8)
                while served < len(times) and times[served] + _TIME_TOLERANCE_S < frame_time:
                    # Times before the very first frame get the first frame.
                    out[served] = rgb(previous if previous is not None else current)
                    served += 1
                previous, previous_time = current, frame_time
                if served == len(times):
                    return out
        except av.error.FFmpegError as exc:
            raise _cut_short(
                path,
                stream,
                f"decoding failed after {n_decoded}{of} frames "
                f"(at {max(previous_time, 0.0):.3f} s: {exc.strerror or exc})",
                unsure="corrupt",
            ) from None
        if previous is None:
            raise _cut_short(path, stream, "no frame could be decoded", unsure="corrupt")
        # The rest of the times lie after the last frame: valid only if nothing is missing.
        frame_s = 1.0 / fps if fps else 0.0
        decoded_s = previous_time + frame_s
        if (declared_s and decoded_s < declared_s - max(1.5 * frame_s, 0.05)) or (
            declared_frames and n_decoded < declared_frames
        ):
            raise _cut_short(
                path,
                stream,
                f"decoded {n_decoded}{of} frames "
                f"(up to {decoded_s:.3f} s of a declared {declared_s:.3f} s)",
                unsure="truncated or corrupt",
            )
        assert out is not None
        out[served:] = rgb(previous)
        return out
    finally:
        container.close()
