"""Transcoding keeps time: a variable-rate clip's frames stay where the sound is, and a cut-off
file keeps its real frame rate (checked against indices encoded in the pixels)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import decoded_audio
from kinema.app.media_jobs import transcode
from kinema.media import open_video
from kinema.media.probe import probe
from kinema.media.synth import decode_index, pattern_frame, tone, write_clip
from kinema.media.writer import VideoWriter


def on_screen(times: list[Fraction], t: Fraction) -> int:
    """The frame a player shows at ``t``: the last to start by then."""
    return max(k for k, start in enumerate(times) if start <= t)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_variable_rate_transcode_keeps_source_timing(tmp_path: Path, vfr_times: list[Fraction],
                                                      suffix: str):
    src = write_clip(tmp_path / "vfr.mkv", n=len(vfr_times), times=vfr_times, gop=20, bframes=2,
                     audio=tone(300.0, 4.5, click_at=2.0))
    dst = tmp_path / f"out{suffix}"
    for _ in transcode(src, dst):
        pass
    with open_video(dst) as out:
        assert len(out) == len(vfr_times) and out.is_vfr
        end = vfr_times[-1]
        for k in range(200):
            t = end * k / 200
            assert decode_index(out[out.index_at(t)]) == on_screen(vfr_times, t), float(t)
    samples, rate, _ = decoded_audio(dst)
    assert abs(int(np.argmax(samples)) / rate - 2.0) < 0.01  # the sound did not move either


def test_variable_rate_range_starts_at_zero(tmp_path: Path, vfr_mkv: Path, vfr_times: list[Fraction]):
    dst = tmp_path / "part.mp4"
    for _ in transcode(vfr_mkv, dst, start=10, stop=40):
        pass
    with open_video(dst) as out:
        assert [out.timestamp(i) for i in range(len(out))] == [t - vfr_times[10] for t in vfr_times[10:40]]
        assert [decode_index(f) for f in out.frames()] == list(range(10, 40))


def cut_copies(full: Path, folder: Path) -> list[Path]:
    data = full.read_bytes()
    cuts = []
    for percent in range(35, 100, 4):
        cut = folder / f"cut{percent}{full.suffix}"
        cut.write_bytes(data[: len(data) * percent // 100])
        cuts.append(cut)
    return cuts


@pytest.mark.parametrize("suffix,options", [(".mkv", {}), (".mp4", {"movflags": "+faststart"}),
                                            (".mov", {})])
def test_truncated_file_keeps_its_frame_rate(tmp_path: Path, suffix: str, options: dict[str, str]):
    rate = Fraction(30000, 1001)
    full = tmp_path / f"full{suffix}"
    with VideoWriter(full, rate, (320, 240), codec="h264", options=options,
                     audio_samples=np.zeros((1, 48000 * 4), np.float32)) as w:
        for i in range(120):
            w.write(pattern_frame(i, 320, 240))
    for cut in cut_copies(full, tmp_path):
        info = probe(cut).video
        assert info is not None and info.frames < 120, cut.name
        assert (info.fps, info.vfr) == (str(rate), False), cut.name
        with open_video(cut) as r:  # a frame the cut left undecodable shows its neighbour
            shown = [decode_index(f) for f in r.frames()]
            assert all(k == i for i, k in enumerate(shown) if i not in r.bad_frames), cut.name
    dst = tmp_path / "again.mp4"
    for _ in transcode(cut_copies(full, tmp_path)[5], dst):
        pass
    with open_video(dst) as out:
        assert out.fps == rate and not out.is_vfr
