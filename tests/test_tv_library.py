"""kinema tv's embedded default: segments cut from the user's own footage to the beat of its music."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import write_wav
from kinema.app.tv_library import library_segments, segment_title
from kinema.core.errors import InvalidArgumentError
from kinema.media import open_video
from kinema.search.cutting import Piece
from kinema.search.rotation import Rotation, beat_points, fewest_cuts, limit_spans, plan_segment, varied_order

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
CLIPS = ("dog.mp4", "coffee.mp4", "juggle.mp4", "bedroom.mp4")
FPS = 30
SIZE = (320, 180)
PERIOD = 0.75  # the click track's beat: 80 bpm, not a whole number of frames at 30 fps

needs_media = pytest.mark.skipif(not all((MEDIA / c).is_file() for c in CLIPS),
                                 reason=f"the shared real clips are not in {MEDIA}")


def write_click_track(path: Path, seconds: float, period: float, rate: int = 44100) -> np.ndarray:
    """Clicks every ``period`` seconds over faint noise; the click times."""
    y = 0.01 * np.random.default_rng(0).normal(size=int(seconds * rate))
    beats = np.arange(period, seconds - 0.1, period)
    for b in beats:
        i = int(b * rate)
        y[i:i + 300] += np.hanning(300) * 0.9
    write_wav(path, y, rate)
    return beats


def make_library(folder: Path, clips: tuple[str, ...] = CLIPS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in clips:
        (folder / name).symlink_to(MEDIA / name)
    return folder


def picture_jumps(path: Path) -> list[int]:
    """Frames where the picture changes abruptly (the first frame of each new shot)."""
    with open_video(path) as reader:
        previous, jumps = None, []
        for i in range(len(reader)):
            frame = reader[i].astype(np.int16)
            if previous is not None and np.abs(frame - previous).mean() > 20:
                jumps.append(i)
            previous = frame
    return jumps


def streams(path: Path) -> tuple[str, str | None, int, float, float | None]:
    """Video codec, sound codec (or ``None``), frames, frame rate and seconds of sound."""
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        codec, rate = video.codec_context.name, float(video.average_rate)
        frames = sum(1 for packet in container.demux(video) if packet.size)
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return codec, None, frames, rate, None
        audio = container.streams.audio[0]
        name = audio.codec_context.name
        seconds = sum(float(p.duration * audio.time_base) for p in container.demux(audio) if p.size)
    return codec, name, frames, rate, seconds


@needs_media
def test_segments_cut_on_the_beats_without_a_model(tmp_path: Path):
    library = make_library(tmp_path / "library")
    beats = write_click_track(library / "click.wav", 14.0, PERIOD)
    state = tmp_path / "state"
    # a model folder that is not there: the no-CLIP path, whatever this machine has cached
    segments = library_segments(library, "a walk in the park", seconds=4, rate=FPS, size=SIZE, state=state,
                                model=tmp_path / "no-clip-here", shot_seconds=1.0)
    made = [next(segments) for _ in range(3)]
    segments.close()
    assert not (state / "index").exists()  # no model: nothing embedded
    seen: list[str] = []
    for k, segment in enumerate(made):
        assert segment.path.is_file() and segment.path.suffix == ".mp4"
        assert segment.duration == 4
        video, audio, frames, rate, audio_seconds = streams(segment.path)
        assert (video, audio) == ("h264", "aac")
        assert abs(frames - 4 * FPS) <= 1 and rate == FPS
        assert audio_seconds is not None and abs(audio_seconds - 4) < 0.05
        # the music plays on: segment k is the click track from 4k seconds
        on_beats = [(b - 4 * k) * FPS for b in beats if 4 * k <= b < 4 * k + 4]
        assert segment.cuts, "a few shots per segment"
        for cut in segment.cuts:
            assert min(abs(cut - f) for f in on_beats) <= 1, (cut, on_beats)
        jumps = picture_jumps(segment.path)
        assert len(jumps) == len(segment.cuts)
        assert all(abs(j - c) <= 1 for j, c in zip(jumps, segment.cuts, strict=True)), (jumps, segment.cuts)
        assert len(segment.shots) == len(segment.cuts) + 1 == len(set(segment.shots))  # no shot twice
        assert segment.title.startswith("a walk in the park: ")
        assert all(Path(s).name in segment.title for s in segment.sources)
        assert "click.wav" in segment.title and segment.music.endswith("click.wav")
        seen += segment.shots
    assert len(set(seen)) == len(CLIPS)  # the rotation goes through the whole library


@needs_media
def test_no_music_keeps_the_shots_sound_or_silence_and_a_restart_continues(tmp_path: Path):
    silent = make_library(tmp_path / "silent", ("juggle.mp4", "bedroom.mp4"))  # neither has sound
    state = tmp_path / "state"
    segments = library_segments(silent, "games", seconds=2, rate=FPS, size=SIZE, state=state, clip=False,
                                shot_seconds=0.5)
    first = next(segments)
    segments.close()
    video, audio, frames, _, _ = streams(first.path)
    assert (video, audio) == ("h264", "aac") and abs(frames - 2 * FPS) <= 1  # silence, but a sound track
    assert first.music is None and "music" not in first.title
    assert all(c % (FPS // 2) == 0 for c in first.cuts)  # a steady pulse when there is nothing to cut to
    assert len(set(first.shots)) == len(first.shots) == 2

    again = library_segments(silent, "games", seconds=2, rate=FPS, size=SIZE, state=state, clip=False,
                             shot_seconds=0.5, keep=1)
    second = next(again)
    again.close()
    assert second.path.name == "segment-000002.mp4"  # the channel continues where it was
    assert sorted(p.name for p in (state / "segments").iterdir()) == [  # keep=1
        "segment-000002.mp4", "segment-000002.mp4.provenance.json"]
    assert json.loads((state / "library.json").read_text())["rotation"]["count"] == 2
    assert set(second.shots) == set(first.shots)  # two shots: both again, each continuing on

    sound = make_library(tmp_path / "sound", ("dog.mp4", "coffee.mp4"))  # videos with sound, no music
    (sound / "notes.txt").write_text("not a song")
    inside = sound / "tv-state"  # a state folder inside the library: its segments are not footage
    for _ in range(2):
        segment = next(library_segments(sound, "pets", seconds=2, rate=FPS, size=SIZE, state=inside,
                                        clip=False, shot_seconds=0.5))
        assert streams(segment.path)[1] == "aac" and segment.music is None  # the shots' own sound
        assert {Path(s).name for s in segment.sources} <= {"dog.mp4", "coffee.mp4"}


@needs_media
def test_a_clip_model_ranks_the_shots_by_the_theme(tmp_path: Path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from kinema.models.tiny_clip import build_tiny_clip

    model = build_tiny_clip(tmp_path / "tiny-clip")
    library = make_library(tmp_path / "library", ("dog.mp4", "coffee.mp4"))
    write_click_track(library / "click.wav", 6.0, 0.5)
    state = tmp_path / "state"
    segment = next(library_segments(library, "a dog", seconds=2, rate=FPS, size=SIZE, state=state,
                                    model=model, shot_seconds=0.5))
    assert (state / "index" / "frames.lance").is_dir()  # indexed as kinema index does
    assert streams(segment.path)[:2] == ("h264", "aac") and segment.cuts


def test_segment_title_names_the_theme_and_files():
    title = segment_title(" city ", ["/a/x.mp4", "/b/y.mov"], "/m/song.mp3")
    assert title == "city: x.mp4, y.mov · music: song.mp3"
    assert segment_title("city", ["/a/x.mp4"], None) == "city: x.mp4"


def test_beat_points_land_on_beats_at_least_a_shot_apart():
    fps = Fraction(30)
    points = beat_points([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5], Fraction(0), Fraction(4), fps, shot_frames=30)
    assert points == [0, 30, 60, 90, 120]
    # a segment 10 s into the song: beats are relative to its start; the last one too near the end
    points = beat_points([10.4, 11.2, 12.0, 13.95], Fraction(10), Fraction(4), fps, shot_frames=20)
    assert points == [0, 36, 60, 120]
    assert fewest_cuts([0.5 * k for k in range(1, 8)], Fraction(0), Fraction(4), fps, shot_frames=15,
                       shots=3) == [0, 60, 120]
    with pytest.raises(InvalidArgumentError):
        fewest_cuts([1.0], Fraction(0), Fraction(4), fps, shot_frames=15, shots=0)


def test_plan_segment_rotates_without_repeats_and_continues_shots():
    rate = Fraction(30)
    pieces = [Piece(f"/v{k}.mp4", 0, 300, rate) for k in range(5)]
    rotation = Rotation()
    shown: list[list[str]] = []
    for _ in range(4):
        cuts, keys, rotation = plan_segment(pieces, [0, 30, 60, 90], rate, rotation)
        assert len(keys) == len(set(keys)) == 3 and [c.frames for c in cuts] == [30, 30, 30]
        shown.append(keys)
    assert shown[1][0] not in shown[0]  # the recent shots wait while others fit
    assert rotation.count == 4 and Rotation.from_json(json.loads(json.dumps(rotation.to_json()))) == rotation
    again = plan_segment(pieces[:3], [0, 30, 60, 90], rate, Rotation())[0]
    assert [c.start for c in again] == [0, 0, 0]
    # a shot that comes round again continues where it left off, and restarts once used up
    one = [Piece("/long.mp4", 0, 75, rate)]
    rot = Rotation()
    starts = []
    for _ in range(3):
        cuts, _, rot = plan_segment(one, [0, 30], rate, rot)
        starts.append(cuts[0].start)
    assert starts == [0, 30, 0]
    with pytest.raises(InvalidArgumentError):
        plan_segment([Piece("/short.mp4", 0, 10, rate)], [0, 30], rate, Rotation())


def test_varied_order_is_deterministic_and_alternates_sources():
    rate = Fraction(30)
    pieces = [Piece(f"/{v}.mp4", s, s + 10, rate) for v in "abc" for s in range(0, 40, 10)]
    order = varied_order(pieces, "theme")
    assert order == varied_order(list(reversed(pieces)), "theme")
    def place(p: Piece) -> tuple[str, int]:
        return p.source, p.start

    assert sorted(order, key=place) == sorted(pieces, key=place)
    assert all(a.source != b.source for a, b in itertools.pairwise(order))
    assert varied_order(pieces, "another theme") != order


def test_a_library_of_few_short_shots_still_fills_a_segment():
    rate = Fraction(25)
    assert limit_spans([0, 500], 200) == [0, 167, 333, 500]
    assert limit_spans([0, 100, 150], 200) == [0, 100, 150]
    pieces = [Piece("/a.mp4", 0, 240, rate), Piece("/b.mp4", 0, 200, rate)]
    points = limit_spans([0, 500], 240)
    cuts, shown, _rotation = plan_segment(pieces, points, rate, Rotation())
    assert sum(c.frames for c in cuts) == 500 and len(cuts) == 3
    assert len(set(shown)) == 2  # a shot shows twice when the library has too few
