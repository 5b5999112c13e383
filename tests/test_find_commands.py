"""Index, search, classify, highlight and summarize through the CLI, with a tiny CLIP."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from conftest import write_wav
from kinema.media import open_video
from kinema.media.image import write_image
from kinema.media.writer import VideoWriter
from kinema.vision.synthetic import moving_object

FPS = 24


def kinema(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kinema", *args], capture_output=True, text=True, check=True)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> tuple[Path, list[Path], Path]:
    """A tiny CLIP and two clips of three 30-frame shots each (hard cuts at 30 and 60)."""
    folder = tmp_path_factory.mktemp("library")
    model = folder / "clip"
    kinema("models", "tiny", "clip", str(model))
    clips = []
    for k in range(2):
        path = folder / f"clip{k}.mp4"
        with VideoWriter(path, FPS, (160, 120), options={"crf": "14"}) as w:
            for seed in range(3):
                for f in moving_object(n=30, size=(160, 120), seed=10 * k + seed).frames:
                    w.write(f)
        clips.append(path)
    return model, clips, folder


def test_index_search_classify(library):
    model, clips, folder = library
    db = folder / "db"
    first = kinema("index", *map(str, clips), "--db", str(db), "--model", str(model))
    assert first.stdout.count("indexed") == 2
    again = kinema("index", *map(str, clips), "--db", str(db), "--model", str(model))
    assert again.stdout.count("unchanged") == 2  # nothing re-embedded
    with open_video(clips[1]) as r:
        write_image(folder / "q.png", r[45])  # a frame from the second shot of the second clip
        second_shot = (float(r.timestamp(30)), float(r.timestamp(60)))
    hits = json.loads(kinema("search", "--image", str(folder / "q.png"), "--db", str(db), "--json").stdout)
    best = hits["results"][0]
    assert best["video"] == str(clips[1].resolve()) and (best["start"], best["end"]) == second_shot
    assert best["score"] == pytest.approx(1.0, abs=1e-3)
    words = json.loads(kinema("search", "a dog", "--db", str(db), "--top", "4", "--json").stdout)
    assert 1 <= len(words["results"]) <= 4
    assert all(-1 <= h["score"] <= 1 for h in words["results"])
    labels = json.loads(kinema("classify", str(clips[0]), "--labels", "dog,car", "--model", str(model),
                               "--json").stdout)
    assert [(s["start"], s["end"]) for s in labels["shots"]] == [(0, 30), (30, 60), (60, 90)]
    assert {s["label"] for s in labels["shots"]} <= {"dog", "car"}


def test_highlight_and_summary_are_exact(library, tmp_path: Path):
    model, clips, _ = library
    reel, timeline = tmp_path / "reel.mp4", tmp_path / "reel.otio"
    kinema("highlight", *map(str, clips), "--query", "a dog", "--duration", "2.5", "--model", str(model),
           "-o", str(reel), "--otio", str(timeline))
    with open_video(reel) as r:
        assert len(r) == 60 and r.fps == FPS  # 2.5 s exactly
        shown = [r[i] for i in (0, 59)]
    edit = otio.adapters.read_from_file(str(timeline))
    pieces = [c for c in edit.find_clips() if c.media_reference.target_url.endswith(".mp4")]
    assert sum(round(c.source_range.duration.to_seconds() * FPS) for c in pieces) == 60
    assert all(c.source_range.duration.to_seconds() * FPS <= 30 + 1e-6 for c in pieces)  # whole shots at most
    first = pieces[0]
    start = round(first.source_range.start_time.to_seconds() * FPS)
    with open_video(Path(first.media_reference.target_url.removeprefix("file://"))) as source:
        assert np.abs(source[start].astype(int) - shown[0]).mean() < 6  # the reel is its timeline
    summary = tmp_path / "summary.mp4"
    kinema("summarize", str(clips[0]), "--duration", "2", "--model", str(model), "-o", str(summary))
    with open_video(summary) as r:
        assert len(r) == 48


def test_ray_indexing_matches_local(library):
    pytest.importorskip("ray")
    model, clips, folder = library
    local, remote = folder / "local.db", folder / "ray.db"
    kinema("index", *map(str, clips), "--db", str(local), "--model", str(model))
    run = kinema("index", *map(str, clips), "--db", str(remote), "--model", str(model), "--ray")
    assert run.stdout.count("indexed") == 2
    with open_video(clips[0]) as r:
        write_image(folder / "q0.png", r[70])
    hits = [json.loads(kinema("search", "--image", str(folder / "q0.png"), "--db", str(db), "--json").stdout)
            for db in (local, remote)]
    local_hits, ray_hits = (h["results"] for h in hits)  # the same rows, embedded elsewhere
    assert [(h["video"], h["start"], h["end"]) for h in local_hits] == \
        [(h["video"], h["start"], h["end"]) for h in ray_hits]
    assert [h["score"] for h in ray_hits] == pytest.approx([h["score"] for h in local_hits], abs=1e-5)


def clicks(seconds: float, period: float, rate: int = 44100) -> np.ndarray:
    y = 0.01 * np.random.default_rng(0).normal(size=int(seconds * rate))
    for b in np.arange(period, seconds - 0.1, period):
        y[int(b * rate):int(b * rate) + 300] += np.hanning(300) * 0.9
    return y


def test_beatcut_shows_each_moment_once(tmp_path: Path):
    from kinema.media.synth import decode_index, pattern_frame

    clips = []
    for k in (1, 2):  # clip k's frame i carries the number 1000 k + i
        clips.append(tmp_path / f"clip{k}.mp4")
        with VideoWriter(clips[-1], 30, (320, 240), options={"crf": "16"}) as w:
            for i in range(90):
                w.write(pattern_frame(1000 * k + i, 320, 240))
    music = write_wav(tmp_path / "click.wav", clicks(4.0, 0.5))
    out = tmp_path / "cut.mp4"
    kinema("beatcut", *map(str, clips), "--music", str(music), "-o", str(out))
    with open_video(out) as r:
        shown = [decode_index(f) for f in r.frames()]
    assert len(shown) == 120 and len(set(shown)) == 120  # 4 s of 6 s of footage: nothing twice
    assert {s // 1000 for s in shown} == {1, 2}
    runs = [list(g) for _, g in itertools.groupby(shown, key=lambda s: s // 1000)]
    assert len(runs) >= 6 and all(np.all(np.diff(run) == 1) for run in runs)  # each piece plays on


def test_beats_of_silence_say_so(tmp_path: Path):
    silence = write_wav(tmp_path / "silence.wav", np.zeros(44100 * 2))
    assert kinema("beats", str(silence)).stdout.strip() == "no beats: the sound is silent or has no pulse"
    assert json.loads(kinema("beats", str(silence), "--json").stdout) == {"tempo": None, "beats": []}


def test_highlight_checks_the_crossfade_first(library, tmp_path: Path):
    _, clips, _ = library
    missing_model = str(tmp_path / "no-model")  # loading it would fail: the crossfade is checked before
    run = subprocess.run([sys.executable, "-m", "kinema", "highlight", *map(str, clips), "--query", "x",
                          "--duration", "2", "--crossfade", "1", "--model", missing_model, "-o",
                          str(tmp_path / "r.mp4")], capture_output=True, text=True)
    assert run.returncode == 2 and "a 1 s crossfade needs a reel of at least 3.083 s" in run.stderr
    other = tmp_path / "other.mp4"
    with VideoWriter(other, FPS, (96, 64)) as w:
        for f in moving_object(n=30, size=(96, 64), seed=3).frames:
            w.write(f)
    run = subprocess.run([sys.executable, "-m", "kinema", "highlight", str(clips[0]), str(other),
                          "--query", "x", "--duration", "2", "--crossfade", "0.2", "--model", missing_model,
                          "-o", str(tmp_path / "r.mp4")], capture_output=True, text=True)
    assert run.returncode == 2 and "one picture size" in run.stderr
