"""Bad input: one clear error naming the file, a non-zero exit, never a hang or a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import write_sound
from kinema.core.errors import CorruptMediaError, MediaOpenError, UnsupportedMediaError
from kinema.media import open_video
from kinema.media.synth import decode_index, write_clip


def kinema_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kinema", *args], capture_output=True, text=True,
                          timeout=120)


def test_missing_file(tmp_path: Path):
    with pytest.raises(MediaOpenError, match="no such file") as exc:
        open_video(tmp_path / "nope.mp4")
    assert isinstance(exc.value, OSError)
    assert "nope.mp4" in str(exc.value)


def test_directory(tmp_path: Path):
    with pytest.raises(MediaOpenError, match="is a directory"):
        open_video(tmp_path)


def test_text_file_named_mp4(tmp_path: Path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 100)
    with pytest.raises(UnsupportedMediaError, match="not a media file"):
        open_video(fake)


def test_empty_file(tmp_path: Path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(CorruptMediaError, match="empty"):
        open_video(tmp_path / "empty.mp4")


def test_audio_only(tmp_path: Path):
    with pytest.raises(UnsupportedMediaError, match="audio only"):
        open_video(write_sound(tmp_path / "tone.m4a"))


@pytest.mark.parametrize("name,error,message", [
    ("zero.mkv", CorruptMediaError, "zero.mkv: ends before any media data"),
    ("zero.mp4", UnsupportedMediaError, "zero.mp4: has no video stream"),  # mp4 drops the track
])
def test_zero_frames(tmp_path: Path, name: str, error: type[Exception], message: str):
    path = tmp_path / name
    out = av.open(str(path), "w")
    stream = out.add_stream("libx264", rate=25)
    stream.width, stream.height = 64, 64
    out.start_encoding()  # header only, no packets
    out.close()
    with pytest.raises(error, match=message):
        open_video(path)


def test_absurd_dimensions(tmp_path: Path):
    path = tmp_path / "huge.y4m"
    path.write_bytes(b"YUV4MPEG2 W20000 H12000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\0" * 1000)
    with pytest.raises(UnsupportedMediaError, match="implausible frame size 20000x12000"):
        open_video(path)


def test_truncated_mkv_reads_what_decodes(tmp_path: Path, kinema_warnings: list[str]):
    full = write_clip(tmp_path / "full.mkv", n=100, gop=10)
    cut = tmp_path / "cut.mkv"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    with open_video(cut) as r:
        assert r.truncated
        assert 40 <= len(r) < 100
        assert [decode_index(f) for f in r.frames()] == list(range(len(r)))
        assert decode_index(r[len(r) - 1]) == len(r) - 1
    assert any("truncated" in m and "cut.mkv" in m for m in kinema_warnings)


def test_truncated_mp4_without_index(tmp_path: Path):
    full = write_clip(tmp_path / "full.mp4", n=30)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[:-2000])  # the moov index is at the end: it is lost
    with pytest.raises((UnsupportedMediaError, CorruptMediaError), match="cut.mp4"):
        open_video(cut)


def test_corrupt_packets_in_the_middle_keep_indices_stable(tmp_path: Path,
                                                            kinema_warnings: list[str]):
    path = write_clip(tmp_path / "clip.mkv", n=60, gop=10, bframes=0)
    # Find frame 25's packet (a P-frame) and overwrite its payload with garbage.
    container = av.open(str(path))
    packets = [(p.pts, p.pos, p.size) for p in container.demux(video=0) if p.size]
    container.close()
    _, pos, size = sorted(packets)[25]
    data = bytearray(path.read_bytes())
    data[pos + 8: pos + size - 4] = np.random.default_rng(0).integers(
        0, 256, size - 12, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    with open_video(path) as r:
        assert len(r) == 60
        frames = list(r.frames())
        assert len(frames) == 60
        # The broken frame stands in as its predecessor; every index after it stays put.
        assert r.bad_frames == {25}
        assert np.array_equal(frames[25], frames[24])
        assert all(decode_index(frames[i]) == i for i in range(60) if not 25 <= i < 30)
        assert decode_index(r[45]) == 45 and decode_index(r[10]) == 10
        assert np.array_equal(r[25], r[24])  # random access agrees with the sequential pass
        r[27]  # after the damage, until the next keyframe: concealed, never an error or hang
    assert any("frame 25 is corrupt" in m and "clip.mkv" in m for m in kinema_warnings)


def test_cli_errors_are_one_line_with_nonzero_exit(tmp_path: Path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("hello")
    for args, needle in [
        (["probe", str(tmp_path / "missing.mov")], "missing.mov: no such file"),
        (["probe", str(fake)], "notes.mp4: not a media file"),
        (["frame", str(fake), "--index", "0", "-o", str(tmp_path / "x.png")], "notes.mp4"),
    ]:
        result = kinema_cli(*args)
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], result.stderr
        assert "Traceback" not in result.stderr
