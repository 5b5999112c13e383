"""Writer round trips: exact counts and rates, alpha through ProRes 4444 / VP9 / PNG, audio, atomicity."""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import decoded_audio
from kinema.core.errors import InvalidArgumentError, MediaWriteError, OutputExistsError
from kinema.media import open_video
from kinema.media.audio import audio_peaks
from kinema.media.synth import decode_index, pattern_frame, tone, write_clip
from kinema.media.writer import VideoWriter


def rgba_frame(i: int, w: int = 96, h: int = 64) -> np.ndarray:
    """A pattern frame with a known alpha ramp that changes per frame."""
    alpha = np.broadcast_to(((np.arange(w) * 255 // (w - 1) + i * 10) % 256).astype(np.uint8), (h, w))
    return np.dstack([pattern_frame(i, w, h), alpha])


def ffprobe_frames(path: Path) -> tuple[int, str]:
    """Frame count and rate as an independent tool sees them."""
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe is not installed (make test installs it)")
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
                          "-show_entries", "stream=nb_read_frames,avg_frame_rate", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True)
    stream = json.loads(out.stdout)["streams"][0]
    return int(stream["nb_read_frames"]), stream["avg_frame_rate"]


@pytest.mark.parametrize("fps", [Fraction(30000, 1001), Fraction(24), Fraction(25)])
def test_h264_count_and_rate_are_exact(tmp_path: Path, fps: Fraction):
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps, (128, 96)) as w:
        for i in range(37):
            w.write(pattern_frame(i, 128, 96))
    with open_video(path) as r:
        assert len(r) == 37 and r.fps == fps
        assert r.duration == 37 / fps
        assert [decode_index(f) for f in r.frames()] == list(range(37))
    frames, rate = ffprobe_frames(path)
    assert frames == 37 and Fraction(rate) == fps


def test_h265(tmp_path: Path):
    path = tmp_path / "out.mp4"
    with VideoWriter(path, 25, (128, 96), codec="h265") as w:
        for i in range(12):
            w.write(pattern_frame(i, 128, 96))
    with open_video(path) as r:
        assert r.codec == "hevc" and len(r) == 12
        assert [decode_index(f) for f in r.frames()] == list(range(12))


@pytest.mark.parametrize("name,codec", [("out.mov", "prores4444"), ("out.webm", "vp9")])
def test_alpha_survives_movie_codecs(tmp_path: Path, name: str, codec: str):
    path = tmp_path / name
    with VideoWriter(path, 24, (96, 64), alpha=True) as w:
        assert w.spec.name == codec
        for i in range(10):
            w.write(rgba_frame(i))
    with open_video(path, alpha=True) as r:
        assert r.has_alpha and len(r) == 10 and r.fps == 24
        for i in (0, 4, 9):
            got = r[i]
            assert got.shape == (64, 96, 4)
            assert decode_index(got) == i
            err = np.abs(got[..., 3].astype(int) - rgba_frame(i)[..., 3]).mean()
            assert err < 3, f"alpha error {err} at frame {i}"


def test_png_sequence_is_lossless_with_alpha(tmp_path: Path):
    folder = tmp_path / "frames"
    with VideoWriter(folder, 24, (96, 64), alpha=True) as w:
        for i in range(5):
            w.write(rgba_frame(i))
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [f"frame_{i:06d}.png" for i in range(5)]
    from kinema.media.image import read_image

    for i, f in enumerate(files):
        assert np.array_equal(read_image(f), rgba_frame(i))


def test_exr_sequence_is_linear_float(tmp_path: Path):
    folder = tmp_path / "exr"
    with VideoWriter(folder, 24, (32, 16), codec="exr") as w:
        w.write(np.full((16, 32, 3), 188, np.uint8))  # sRGB 188 is linear 0.5
    container = av.open(str(folder / "frame_000000.exr"))
    frame = next(container.decode(video=0))
    container.close()
    green = frame.to_ndarray(format="gbrpf32le")
    assert abs(float(np.asarray(green).reshape(-1)[0]) - 0.5029) < 0.01


def test_audio_is_carried_and_trimmed(tmp_path: Path):
    src = write_clip(tmp_path / "tone.mp4", n=50, fps=25, audio=tone(440.0, 2.0))
    out = tmp_path / "out.mp4"
    with open_video(src) as r, VideoWriter(out, r.fps, r.size, audio_from=src) as w:
        for f in r.frames():
            w.write(f)
    samples, rate, _ = decoded_audio(out)
    assert abs(len(samples) / rate - 2.0) < 0.05
    spectrum = np.abs(np.fft.rfft(samples[: rate]))
    assert abs(int(np.argmax(spectrum)) - 440) <= 2  # one second of samples: 1 Hz bins
    peaks = audio_peaks(out, 10)
    assert peaks.shape == (10, 2) and peaks[:, 1].max() > 0.4 and peaks[:, 0].min() < -0.4


def test_audio_from_an_offset_is_reencoded_exactly(tmp_path: Path):
    src = write_clip(tmp_path / "tone.mkv", n=50, fps=25, audio=tone(1000.0, 2.0))
    out = tmp_path / "part.webm"
    with open_video(src) as r, VideoWriter(out, r.fps, r.size, audio_from=src,
                                           audio_start=Fraction(1)) as w:
        for f in r.frames(25):
            w.write(f)
    samples, rate, codec = decoded_audio(out)
    assert codec == "opus"
    assert abs(len(samples) / rate - 1.0) < 0.05


def test_exception_leaves_nothing_and_keeps_the_old_file(tmp_path: Path):
    path = tmp_path / "render.mp4"
    path.write_bytes(b"previous render")
    with pytest.raises(OutputExistsError):
        VideoWriter(path, 25, (64, 64))
    with pytest.raises(RuntimeError):
        with VideoWriter(path, 25, (64, 64), overwrite=True) as w:
            for i in range(5):
                w.write(pattern_frame(i, 64, 64))
            raise RuntimeError("crash mid-render")
    assert path.read_bytes() == b"previous render"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["render.mp4"]


def test_overwrite_replaces_only_on_success(tmp_path: Path):
    path = tmp_path / "render.mp4"
    path.write_bytes(b"old")
    with VideoWriter(path, 25, (64, 64), overwrite=True) as w:
        w.write(pattern_frame(0, 64, 64))
    with open_video(path) as r:
        assert len(r) == 1


def test_bad_arguments_are_clear(tmp_path: Path):
    with pytest.raises(InvalidArgumentError, match="even width and height"):
        VideoWriter(tmp_path / "odd.mp4", 25, (853, 479))
    with pytest.raises(InvalidArgumentError, match="cannot carry alpha"):
        VideoWriter(tmp_path / "a.mp4", 25, (64, 64), alpha=True)
    with pytest.raises(InvalidArgumentError, match="unknown codec"):
        VideoWriter(tmp_path / "a.mp4", 25, (64, 64), codec="divx")
    with pytest.raises(InvalidArgumentError, match="cannot be written into '.webm'"):
        VideoWriter(tmp_path / "a.webm", 25, (64, 64), codec="h264")
    with pytest.raises(MediaWriteError, match="no frames were written"):
        with VideoWriter(tmp_path / "odd.mov", 25, (853, 479), codec="prores4444") as w:
            with pytest.raises(InvalidArgumentError, match="expected 853x479"):
                w.write(np.zeros((480, 854, 3), np.uint8))
    assert not (tmp_path / "odd.mov").exists()


def test_sound_that_starts_late_is_padded_not_pulled_forward(tmp_path: Path):
    # The picture starts at 0 s, the sound (a click at its own 0.5 s) at 1.0 s; a WebM output
    # re-encodes to Opus, and the click must stay at 1.5 s.
    src = tmp_path / "late.mkv"
    write_clip(src, n=50, fps=25)
    sound = tmp_path / "late_sound.mkv"
    with av.open(str(sound), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=48000, layout="mono")
        samples = (tone(100.0, 1.0, click_at=0.5) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, 48000, Fraction(1, 48000)
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    out_path = tmp_path / "out.webm"
    with open_video(src) as r, VideoWriter(out_path, r.fps, r.size, audio_from=sound) as w:
        for f in r.frames():
            w.write(f)
    decoded, rate, _ = decoded_audio(out_path)
    assert abs(int(np.argmax(decoded)) / rate - 1.5) < 0.01
