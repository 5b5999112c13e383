"""Renders carry the timeline's sound: in sync, trimmed to the range, with track gain and mute."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from conftest import decoded_audio
from kinema.app.project_jobs import new_project
from kinema.app.render_job import render
from kinema.document import store
from kinema.document.model import AudioTrack, ClipItem
from kinema.document.timing import TimeRange
from kinema.media.synth import tone, write_clip

RATE = 48000


@pytest.fixture
def project(tmp_path: Path) -> Path:
    video = write_clip(tmp_path / "talk.mp4", n=24, size=(64, 48), fps=24,
                       audio=tone(440, 1.0, click_at=0.5))
    return new_project(tmp_path / "talk", video)


def click_time(path: Path) -> float:
    samples, rate, _ = decoded_audio(path)
    return int(np.argmax(samples > 0.8)) / rate


def render_to(project: Path, out: Path, **kw) -> Path:
    for _ in render(project, out, **kw):
        pass
    return out


def test_sound_stays_in_sync_with_the_range(project: Path, tmp_path: Path):
    whole = render_to(project, tmp_path / "whole.mp4")
    part = render_to(project, tmp_path / "part.mp4", start=6)  # 0.25 s in
    assert click_time(whole) == pytest.approx(0.5, abs=0.002)
    assert click_time(part) == pytest.approx(0.25, abs=0.002)
    samples, rate, codec = decoded_audio(part)
    assert codec == "aac" and rate == RATE
    assert len(samples) / rate == pytest.approx(18 / 24, abs=0.03)


def test_track_gain_mix_and_mute(project: Path, tmp_path: Path):
    with store.ProjectFile(project) as pf:
        tl = pf.project.timeline
        tl.audio_tracks[0].gain_db = -6.0206  # half amplitude
        # the same sound again on a second track, starting 12 frames (0.5 s) later
        late = ClipItem(id="c9", media_id="m1", start=12,
                        source_range=TimeRange.from_frames(0, 12, tl.rate))
        tl.audio_tracks.append(AudioTrack(id="a2", name="A2", gain_db=-6.0206, items=[late]))
        pf.save()
    mixed, rate, _ = decoded_audio(render_to(project, tmp_path / "mix.mp4"))
    quiet = mixed[int(0.1 * rate):int(0.45 * rate)]  # one track of half-scale sine, halved
    assert np.sqrt(np.mean(quiet**2)) == pytest.approx(0.25 / np.sqrt(2), rel=0.05)
    both = mixed[int(0.55 * rate):int(0.95 * rate)]  # two in-phase copies: back to half scale
    assert np.sqrt(np.mean(both**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)

    with store.ProjectFile(project) as pf:
        for track in pf.project.timeline.audio_tracks:
            track.muted = True
        pf.save()
    silent = render_to(project, tmp_path / "silent.mp4")
    with av.open(str(silent)) as container:
        assert not container.streams.audio
