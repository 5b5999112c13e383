"""Edits made from footage through the CLI: beat cuts land on the beats; timelines match."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from conftest import write_wav
from kinema.media import open_video
from kinema.media.writer import VideoWriter
from kinema.vision.synthetic import moving_object


def kinema(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kinema", *args], capture_output=True, text=True, check=True)


def write_click_track(path: Path, seconds: float, period: float, rate: int = 44100) -> np.ndarray:
    y = 0.01 * np.random.default_rng(0).normal(size=int(seconds * rate))
    beats = np.arange(period, seconds - 0.1, period)
    for b in beats:
        i = int(b * rate)
        y[i:i + 300] += np.hanning(300) * 0.9
    write_wav(path, y, rate)
    return beats


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    paths = []
    for seed in (1, 2):
        scene = moving_object(n=75, size=(320, 240), seed=seed)
        path = folder / f"clip{seed}.mp4"
        with VideoWriter(path, 30, (320, 240), options={"crf": "12"}) as w:
            for f in scene.frames:
                w.write(f)
        paths.append(path)
    return paths


def cut_frames(path: Path) -> list[int]:
    """Frames where the picture jumps (the first frame of each new cut)."""
    with open_video(path) as r:
        frames = [r[i].astype(np.int16) for i in range(len(r))]
    jumps = [np.abs(frames[i] - frames[i - 1]).mean() for i in range(1, len(frames))]
    return [i + 1 for i, j in enumerate(jumps) if j > 25]


def test_beatcut_cuts_on_the_beats(clips: list[Path], tmp_path: Path):
    music = tmp_path / "click.wav"
    beats = write_click_track(music, 4.0, 0.5)
    out, timeline = tmp_path / "cut.mp4", tmp_path / "cut.otio"
    kinema("beatcut", *map(str, clips), "--music", str(music), "-o", str(out), "--otio", str(timeline))
    with open_video(out) as r:
        assert len(r) == 120 and r.fps == 30  # the song's 4 s at the footage's rate
    expected = [int(round(b * 30)) for b in beats if b * 30 < 120]
    found = cut_frames(out)
    assert len(found) == len(expected)
    assert all(abs(f - e) <= 1 for f, e in zip(found, expected, strict=True)), (found, expected)
    edit = otio.adapters.read_from_file(str(timeline))
    clips_in = list(edit.find_clips())
    lengths = sorted(int(c.source_range.duration.rescaled_to(30).value) for c in clips_in
                     if c.media_reference.target_url.endswith(".mp4"))
    assert sum(lengths) == 120 and len(lengths) == len(expected) + 1  # the rendered cut, clip for clip
    import av

    with av.open(str(out)) as container:
        assert container.streams.audio  # the song is the soundtrack


def test_beats_json(tmp_path: Path):
    music = tmp_path / "click.wav"
    truth = write_click_track(music, 6.0, 0.5)
    data = json.loads(kinema("beats", str(music), "--json").stdout)
    assert data["tempo"] == pytest.approx(120, rel=0.03)
    assert all(np.min(np.abs(np.array(data["beats"]) - t)) < 1 / 30 for t in truth[1:-1])


def test_crossfades_dissolve_and_keep_the_duration(clips: list[Path], tmp_path: Path):
    from fractions import Fraction

    from kinema.app.edit_jobs import EditOutput, deliver
    from kinema.search.cutting import Cut

    fps = Fraction(30)
    cuts = [Cut(str(clips[0]), 0, 40, fps), Cut(str(clips[1]), 10, 40, fps), Cut(str(clips[0]), 30, 40, fps)]
    out = tmp_path / "x.mp4"
    for _ in deliver(cuts, EditOutput(movie=out), fps=fps, size=(320, 240), name="x", crossfade=10):
        pass
    with open_video(out) as r, open_video(clips[0]) as a, open_video(clips[1]) as b:
        assert len(r) == 3 * 40 - 2 * 10  # each join overlaps by the crossfade
        first = r[30 + 5].astype(float)  # halfway through the first dissolve (frames 30..39)
        mix = 0.5 * a[35].astype(float) + 0.5 * b[10 + 5].astype(float)
        assert np.abs(first - mix).mean() < 6
        assert np.abs(r[20].astype(int) - a[20]).mean() < 4  # before it: the first shot alone
        assert np.abs(r[50].astype(int) - b[30]).mean() < 4  # after it: the second alone
        second = r[60 + 5].astype(float)  # halfway through the second join (frames 60..69)
        assert np.abs(second - (0.5 * b[45] + 0.5 * a[35])).mean() < 6
