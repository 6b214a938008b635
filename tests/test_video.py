"""Video writing and decoding: round trip, frame selection by time, and
refusal of odd sizes, truncated, corrupt and non-video files."""

from __future__ import annotations

import re
from fractions import Fraction

import av
import numpy as np
import pytest

from expsearch.data.video import (
    DecodeError,
    VideoInfo,
    probe_video,
    read_frames_at,
    write_video,
    x264_cpu_cap,
)

FPS = 10.0
N = 30


def _smooth(n=N, height=48, width=64) -> np.ndarray:
    """Smooth moving gradients: content that H.264 keeps almost exactly."""
    t = np.arange(n)[:, None, None]
    y, x = np.mgrid[:height, :width]
    red = 128 + 90 * np.sin(x / 9 + t / 6)
    green = 128 + 90 * np.cos(y / 7 - t / 8)
    blue = np.broadcast_to(60 + 2 * x + y, red.shape)
    return np.clip(np.stack([red, green, blue], -1), 0, 255).astype(np.uint8)


def _numbered(n=N, height=48, width=64) -> np.ndarray:
    """Frame i is flat grey at level 8 * i: the index can be read back from the pixels."""
    levels = (8 * np.arange(n) + 4).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (n, height, width, 3)).copy()


def _index(frames: np.ndarray) -> list[int]:
    return [round((float(f.mean()) - 4) / 8) for f in frames]


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "numbered.mp4"
    write_video(path, _numbered(), FPS)
    return path


def test_round_trip(tmp_path):
    frames = _smooth()
    path = tmp_path / "clip.mp4"
    write_video(path, frames, FPS)
    assert probe_video(path) == VideoInfo(duration_s=3.0, fps=10.0, n_frames=N, width=64, height=48)
    decoded = read_frames_at(path, np.arange(N) / FPS)
    assert decoded.dtype == np.uint8 and decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 8
    assert not list(tmp_path.glob(".*")), "the temporary file was left behind"


def test_same_frames_same_bytes(tmp_path):
    """Also from other copies of the frames and at the generator's settings: on
    an AVX-512 CPU, x264's unrestricted assembly gave other bytes call to call."""
    frames = _smooth()
    write_video(tmp_path / "a.mp4", frames, FPS)
    write_video(tmp_path / "b.mp4", frames, FPS)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    encoded = set()
    for copy in range(4):
        path = tmp_path / f"c{copy}.mp4"
        write_video(path, frames.copy(), FPS, crf=23, preset="veryfast")
        encoded.add(path.read_bytes())
    assert len(encoded) == 1


def test_the_x264_cap_names_an_instruction_set_x264_knows():
    assert x264_cpu_cap() in ("AVX2", "AVX", "SSE4.2", "SSSE3", "SSE2", "0")


def test_moov_atom_first(numbered):
    head = numbered.read_bytes()[:4096]
    assert 0 <= head.find(b"moov") < head.find(b"mdat")


def test_frames_at_times(numbered):
    # before the first frame -> the first; between frames -> the earlier one; within
    # 1e-6 s of a frame (float rounding) -> that frame; after the last -> the last
    times = [-1.0, 0.0, 0.05, 0.1, 0.1999, 0.2, 0.7, 1.0 - 1e-9, 2.2, 2.9, 2.95, 3.0, 10.0]
    expected = [0, 0, 0, 1, 1, 2, 7, 10, 22, 29, 29, 29, 29]
    assert _index(read_frames_at(numbered, times)) == expected


def test_times_as_computed_by_the_pipeline(numbered):
    # 3.0 - (n - 1 - i) / 5 lands on frame times only up to rounding
    times = 3.0 - (14 - np.arange(15)) / 5
    assert _index(read_frames_at(numbered, times)) == [min(round(t * 10), 29) for t in times]


def test_mpeg4_codec(tmp_path):
    frames = _smooth()
    write_video(tmp_path / "m.mp4", frames, FPS, codec="mpeg4")
    decoded = read_frames_at(tmp_path / "m.mp4", np.arange(N) / FPS)
    assert np.abs(decoded.astype(int) - frames).mean() < 8


def test_bad_input_to_write(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((3, 47, 64, 3), np.uint8), FPS)
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((3, 48, 63, 3), np.uint8), FPS)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "f.mp4", np.zeros((3, 48, 64, 3), np.float32), FPS)
    assert not list(tmp_path.iterdir())


def test_non_monotonic_times(numbered):
    with pytest.raises(ValueError, match="non-decreasing"):
        read_frames_at(numbered, [0.5, 0.4])


def _raises_naming(path, times=(0.0, 1.0, 2.0, 2.9)):
    with pytest.raises(DecodeError) as info:
        read_frames_at(path, times)
    assert str(path) in str(info.value)
    return str(info.value)


def test_truncated_file(tmp_path):
    source = tmp_path / "smooth.mp4"
    write_video(source, _smooth(), FPS)
    data = source.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    message = _raises_naming(cut)
    assert "decod" in message
    # The header still declares the full length: probing alone cannot tell.
    assert probe_video(cut).duration_s == 3.0


def test_garbage_inside_the_file(tmp_path):
    source = tmp_path / "smooth.mp4"
    write_video(source, _smooth(), FPS)
    data = bytearray(source.read_bytes())
    start = len(data) // 2
    data[start : start + 2000] = np.random.default_rng(0).integers(0, 256, 2000, np.uint8).tobytes()
    broken = tmp_path / "garbage.mp4"
    broken.write_bytes(bytes(data))
    _raises_naming(broken)


def test_not_a_video(tmp_path):
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, np.uint8).tobytes())
    text = tmp_path / "labels.mp4"
    text.write_text("id,target\n1,0\n")
    for path in (noise, text, tmp_path / "missing.mp4"):
        assert "cannot open" in _raises_naming(path)
        with pytest.raises(DecodeError, match="cannot open"):
            probe_video(path)


def _write_rotated(path, frames: np.ndarray, degrees: int) -> None:
    """An MP4 whose display matrix says: show the pictures turned `degrees`
    counter-clockwise (what a phone writes for portrait video)."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=int(FPS))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.set_display_rotation(degrees)
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, int(FPS))
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _corner(n=5, height=48, width=64) -> np.ndarray:
    """Blue frames with a red top-left quadrant: every turn and flip looks different."""
    frames = np.zeros((n, height, width, 3), np.uint8)
    frames[...] = (20, 20, 230)
    frames[:, : height // 2, : width // 2] = (230, 20, 20)
    return frames


@pytest.mark.parametrize(("degrees", "turns"), [(90, 1), (180, 2), (270, 3), (-90, 3)])
def test_rotated_video_is_decoded_upright(tmp_path, degrees, turns):
    frames = _corner()
    path = tmp_path / "phone.mp4"
    _write_rotated(path, frames, degrees)
    decoded = read_frames_at(path, [0.0, 0.2, 0.4])
    upright = np.rot90(frames[0], turns)  # np.rot90 turns counter-clockwise too
    assert decoded.shape == (3, *upright.shape)
    assert np.abs(decoded.astype(int) - upright).mean() < 8
    red = decoded[0, ..., 0] > 128
    height, width = upright.shape[:2]
    corner = {1: (slice(height // 2, None), slice(None, width // 2)),  # bottom left
              2: (slice(height // 2, None), slice(width // 2, None)),  # bottom right
              3: (slice(None, height // 2), slice(width // 2, None))}[turns]  # fmt: skip
    assert red[corner].all() and red.sum() == red[corner].size


def test_an_unrotated_video_is_left_as_it_is(tmp_path):
    frames = _corner()
    _write_rotated(tmp_path / "plain.mp4", frames, 0)
    decoded = read_frames_at(tmp_path / "plain.mp4", [0.0])
    assert decoded.shape == (1, 48, 64, 3) and np.abs(decoded.astype(int) - frames[0]).mean() < 8


def test_empty_non_video_and_truncated_files_each_have_their_reason(tmp_path):
    """One FFmpeg message ("Invalid data found when processing input") used to
    stand for all of them."""
    source = tmp_path / "smooth.mp4"
    write_video(source, _smooth(), FPS)
    data = source.read_bytes()
    files = {
        "empty.mp4": b"",
        "labels.mp4": b"id,target\n1,0\n",
        "cut_at_90.mp4": data[: len(data) * 9 // 10],  # the header is whole, the frames end early
        "cut_at_5.mp4": data[: len(data) // 20],  # not even the header is whole
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    assert _raises_naming(tmp_path / "empty.mp4").endswith("cannot open: empty file (0 bytes)")
    assert "cannot open: not a video: FFmpeg recognises no video format in it" in (
        _raises_naming(tmp_path / "labels.mp4")
    )
    cut = _raises_naming(tmp_path / "cut_at_90.mp4")
    assert re.search(rf"cut_at_90.mp4: truncated: decoded \d+ of {N} frames", cut)
    assert f"(the file has {len(data) * 9 // 10} of the {len(data)} bytes its index lists)" in cut
    assert "cannot open: truncated or damaged MP4/QuickTime file" in (
        _raises_naming(tmp_path / "cut_at_5.mp4")
    )
    with pytest.raises(DecodeError, match="empty file"):
        probe_video(tmp_path / "empty.mp4")


def test_an_audio_file_is_not_a_video(tmp_path):
    path = tmp_path / "sound.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
        frame.sample_rate, frame.pts = 8000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert "cannot open: not a video: no video stream, only audio" in _raises_naming(path)
