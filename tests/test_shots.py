"""Shot detection: synthetic clips with known cuts, dissolves, fades, flashes and pans; real footage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import media
from kinema.core.errors import InvalidArgumentError, KinemaError
from kinema.search.shots import ShotDetector, Transition, detect_transitions, shots_from_transitions

W, H = 320, 180
RATE = Fraction(30000, 1001)


# -- synthetic footage -------------------------------------------------------------------------


def texture(seed: int, width: int, height: int, palette: int | None = None) -> np.ndarray:
    """A smooth random colour texture: blobs at two scales, in colours drawn from ``palette``."""
    rng = np.random.default_rng(seed)
    prng = np.random.default_rng(seed if palette is None else palette)
    coarse = cv2.resize(rng.random((height // 24, width // 24, 3), np.float32), (width, height),
                        interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.random((height, width, 3), np.float32), (0, 0), 3)
    base = prng.uniform(40, 200, 3)
    spread = prng.uniform(60, 140, 3)
    img = base + spread * (coarse - 0.5) * 2 + 90 * (fine - 0.5) * 3
    return np.clip(img, 0, 255).astype(np.uint8)


@dataclass
class Shot:
    seed: int
    frames: int
    pan: list[float]  # x offset of the crop window at each frame
    palette: int | None = None

    def render(self) -> list[np.ndarray]:
        low = int(np.floor(min(self.pan)))
        reach = int(max(self.pan)) - low + W + 1
        tex = texture(self.seed, reach, H, self.palette)
        rng = np.random.default_rng(self.seed + 100)
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        out = []
        for k, x in enumerate(self.pan):
            frame = np.ascontiguousarray(tex[:, int(x) - low:int(x) - low + W])
            cx = int(40 + (W - 80) * k / max(1, self.frames - 1))
            cy = int(H / 2 + 40 * np.sin(k / 6))
            cv2.circle(frame, (cx, cy), 22, colour, -1, lineType=cv2.LINE_AA)
            out.append(frame)
        return out


def steady(seed: int, frames: int, speed: float = 1.5, palette: int | None = None) -> Shot:
    return Shot(seed, frames, [speed * k for k in range(frames)], palette)


def whip(seed: int, frames: int, start: int, stop: int, speed: float) -> Shot:
    """A still camera that pans fast (``speed`` pixels a frame) from ``start`` to ``stop``."""
    pan, x = [], 0.0
    for k in range(frames):
        pan.append(x)
        if start <= k < stop:
            x += speed
    return Shot(seed, frames, pan)


def mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return np.clip((1 - t) * a.astype(np.float32) + t * b.astype(np.float32) + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Truth:
    kind: str
    start: int
    end: int  # exclusive; for a cut, start + 1


def synthetic_frames() -> tuple[list[np.ndarray], list[Truth]]:
    """300 frames: cut, flash, cut, fast pan, dissolve, fade through black, cut between look-alikes."""
    a = steady(1, 45).render()
    b = steady(2, 55, speed=-1.0).render()
    for k in range(25, 28):  # a three-frame flash, then the same shot goes on
        b[k] = mix(b[k], np.full_like(b[k], 250), 0.8)
    c = whip(3, 80, 15, 45, speed=20.0).render()  # 6% of the width a frame, over frames 115..144
    d = steady(4, 65).render()
    e = steady(5, 55).render()
    f = steady(6, 30, palette=5).render()  # the same colours as e, other shapes
    frames: list[np.ndarray] = [*a, *b, *c[:60]]
    truth = [Truth("cut", 45, 46), Truth("cut", 100, 101)]
    for k in range(20):  # dissolve over frames 160..179: c's last twenty frames into d's first
        frames.append(mix(c[60 + k], d[k], (k + 1) / 21))
    truth.append(Truth("dissolve", 160, 180))
    frames += d[20:55]  # up to frame 214
    for k in range(10):  # fade out over 215..224, black 225..227, fade in over 228..237
        frames.append(mix(d[55 + k], np.zeros_like(d[0]), (k + 1) / 10))
    frames += [np.zeros_like(d[0])] * 3
    for k in range(10):
        frames.append(mix(np.zeros_like(e[0]), e[k], (k + 1) / 11))
    truth.append(Truth("fade", 215, 238))
    frames += e[10:42]  # up to frame 269
    truth.append(Truth("cut", 270, 271))
    frames += f
    assert len(frames) == 300, len(frames)
    return frames, truth


@pytest.fixture(scope="module")
def synthetic() -> tuple[list[np.ndarray], list[Truth]]:
    return synthetic_frames()


@pytest.fixture(scope="module")
def synthetic_clip(tmp_path_factory: pytest.TempPathFactory, synthetic) -> Path:
    from kinema.media.writer import VideoWriter

    path = tmp_path_factory.mktemp("shots") / "shots.mp4"
    with VideoWriter(path, RATE, (W, H)) as writer:
        for frame in synthetic[0]:
            writer.write(frame)
    return path


def check(found: list[Transition], truth: list[Truth]) -> None:
    """Hard cuts exactly, gradual transitions of the right kind with their boundary in the span."""
    assert len(found) == len(truth), (found, truth)
    for t, want in zip(found, truth, strict=True):
        assert t.kind == want.kind, (t, want)
        if want.kind == "cut":
            assert (t.start, t.end, t.boundary) == (want.start, want.start + 1, want.start), t
        else:
            assert want.start <= t.boundary < want.end, (t, want)
            assert abs(t.start - want.start) <= 3 and abs(t.end - want.end) <= 3, (t, want)


# -- the detector on frames --------------------------------------------------------------------


def test_synthetic_frames(synthetic) -> None:
    frames, truth = synthetic
    small = [cv2.resize(f, (192, 108), interpolation=cv2.INTER_AREA) for f in frames]
    check(detect_transitions(small), truth)


def test_yuv_frames_find_the_same_transitions(synthetic) -> None:
    frames, truth = synthetic
    small = [cv2.cvtColor(cv2.resize(f, (192, 108), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2YCrCb)
             for f in frames]
    check(detect_transitions(small, pixels="yuv"), truth)
    with pytest.raises(InvalidArgumentError, match="pixels"):
        ShotDetector(pixels="bgr")  # type: ignore[arg-type]


def test_a_dissolve_between_flat_colours() -> None:
    # Flat pictures have no contrast at all, so the middle's contrast dip is 0 (it divided by it).
    red, blue = np.full((H, W, 3), (200, 30, 30), np.uint8), np.full((H, W, 3), (30, 30, 200), np.uint8)
    frames = [red] * 40 + [mix(red, blue, (k + 1) / 21) for k in range(20)] + [blue] * 40
    found = detect_transitions(frames)
    assert [t.kind for t in found] == ["dissolve"] and 40 <= found[0].boundary < 60
    assert found[0].score > 0


def test_tiny_frames_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="1x1 are too small"):
        ShotDetector().push(0, np.zeros((1, 1, 3), np.uint8))
    assert detect_transitions([np.zeros((16, 16, 3), np.uint8)] * 3) == []


def test_full_size_frames_are_shrunk(synthetic) -> None:
    frames = synthetic[0]
    big = [cv2.resize(f, (640, 360)) for f in frames[:130]]
    assert [t.boundary for t in detect_transitions(big)] == [45, 100]


def test_streaming_matches_batch_and_lags_little(synthetic) -> None:
    frames = synthetic[0]
    detector = ShotDetector()
    seen: list[tuple[int, Transition]] = []
    for i, frame in enumerate(frames, 1000):
        seen.extend((i, t) for t in detector.push(i, frame))
    seen.extend((1300, t) for t in detector.flush())
    batch = detect_transitions(frames)
    assert [(t.kind, t.start - 1000, t.end - 1000, t.boundary - 1000) for _, t in seen] == [
        (t.kind, t.start, t.end, t.boundary) for t in batch]
    for pushed, t in seen[:-1]:
        assert pushed - t.end <= detector.lag + 1
    assert detector.flush() == []


def test_flashes_and_pans_are_not_cuts() -> None:
    frames = steady(7, 40).render() + whip(8, 60, 10, 40, speed=32.0).render()  # 10% of the width a frame
    frames[10] = np.full_like(frames[10], 255)  # a one-frame white flash
    frames[20] = mix(frames[20], np.full_like(frames[20], 255), 0.6)
    frames[21] = mix(frames[21], np.full_like(frames[21], 255), 0.9)
    frames[30] = frames[31] = np.zeros_like(frames[30])  # a two-frame black blink
    assert [(t.kind, t.boundary) for t in detect_transitions(frames)] == [("cut", 40)]
    assert detect_transitions(frames, flash_frames=0)[0].boundary in (10, 11)


def test_cuts_only_and_still_frames() -> None:
    still_a = [texture(11, W, H)] * 30
    still_b = [texture(12, W, H)] * 30
    found = detect_transitions(still_a + still_b + still_a, gradual=False)
    assert [(t.kind, t.start, t.end) for t in found] == [("cut", 30, 31), ("cut", 60, 61)]
    assert detect_transitions(still_a) == []


def test_black_between_shots_is_one_fade() -> None:
    a, b = steady(14, 30).render(), steady(15, 30).render()
    black = [np.zeros_like(a[0])] * 8
    found = detect_transitions(a + black + b)
    assert [(t.kind, t.start, t.end) for t in found] == [("fade", 30, 38)]
    assert 30 <= found[0].boundary <= 38
    assert [t.kind for t in detect_transitions(a + black + b, gradual=False)] == ["cut", "cut"]


def test_fades_at_the_ends_are_not_transitions() -> None:
    shot = steady(13, 40).render()
    black = np.zeros_like(shot[0])
    frames = [black] * 5 + [mix(black, f, (k + 1) / 10) for k, f in enumerate(shot[:10])] + shot[10:30]
    frames += [mix(f, black, (k + 1) / 10) for k, f in enumerate(shot[30:])] + [black] * 5
    assert detect_transitions(frames) == []


def test_shots_from_transitions() -> None:
    ts = [Transition("dissolve", 40, 60, 50), Transition("cut", 10, 11, 10), Transition("fade", 80, 90, 86),
          Transition("cut", 10, 11, 10), Transition("cut", 100, 101, 100)]
    shots = shots_from_transitions(ts, 100)
    assert [(s.start, s.end, s.transition) for s in shots] == [
        (0, 10, "cut"), (10, 50, "cut"), (50, 86, "dissolve"), (86, 100, "fade")]
    assert sum(s.frames for s in shots) == 100
    assert [(s.start, s.end) for s in shots_from_transitions([], 5, start=20)] == [(20, 25)]
    assert shots_from_transitions([], 0) == []


def test_bad_input() -> None:
    detector = ShotDetector()
    detector.push(0, np.zeros((18, 32, 3), np.uint8))
    with pytest.raises(InvalidArgumentError, match="expected frame 1"):
        detector.push(2, np.zeros((18, 32, 3), np.uint8))
    with pytest.raises(InvalidArgumentError, match="first was 32x18"):
        detector.push(1, np.zeros((20, 32, 3), np.uint8))
    with pytest.raises(InvalidArgumentError, match="uint8"):
        detector.push(1, np.zeros((18, 32, 3), np.float32))
    with pytest.raises(InvalidArgumentError):
        ShotDetector(cut_ratio=0.5)
    with pytest.raises(InvalidArgumentError):
        shots_from_transitions([], -1)
    detector.flush()
    with pytest.raises(InvalidArgumentError, match="flushed"):
        detector.push(1, np.zeros((18, 32, 3), np.uint8))


# -- detect_shots on files -----------------------------------------------------------------------


def test_detect_shots_on_a_file(synthetic_clip: Path, synthetic) -> None:
    from kinema.app.shot_jobs import detect_shots
    from kinema.media import open_video

    result = detect_shots(synthetic_clip)
    check(result.transitions, synthetic[1])
    assert result.fps == RATE and result.frames == 300
    assert [s.start for s in result.shots] == [0, 45, 100, result.transitions[2].boundary, 226, 270]
    assert result.ranges()[-1] == (270, 300)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["fps"] == "30000/1001"
    assert [s["transition"] for s in data["shots"]] == ["cut", "cut", "cut", "dissolve", "fade", "cut"]
    with open_video(synthetic_clip) as reader:
        for shot in data["shots"]:
            assert shot["start_time"] == float(reader.timestamp(shot["start"]))
            end = reader.duration if shot["end"] == 300 else reader.timestamp(shot["end"])
            assert shot["end_time"] == float(end)
        assert data["shots"][-1]["end_time"] == float(reader.duration)
    assert [(s["start"], s["end"]) for s in data["shots"]] == result.ranges()


def test_finding_shots_reports_every_frame(synthetic_clip: Path) -> None:
    from kinema.app.shot_jobs import detect_shots, find_shots
    from kinema.core.jobs import Progress, run

    events: list[Progress] = []
    found = run(find_shots(synthetic_clip), on_progress=events.append)
    assert events == [Progress(i, 300) for i in range(1, 301)]
    assert found.ranges() == detect_shots(synthetic_clip).ranges()


def test_detect_shots_width(synthetic_clip: Path) -> None:
    from kinema.app.shot_jobs import detect_shots

    cuts_only = detect_shots(synthetic_clip, width=128, gradual=False)
    assert [s.start for s in cuts_only.shots] == [0, 45, 100, 270]
    with pytest.raises(InvalidArgumentError, match="width"):
        detect_shots(synthetic_clip, width=8)


def test_detect_shots_missing_file(tmp_path: Path) -> None:
    from kinema.app.shot_jobs import detect_shots

    missing = tmp_path / "nope.mp4"
    with pytest.raises(KinemaError, match="nope.mp4") as info:
        detect_shots(missing)
    assert isinstance(info.value, OSError)


def test_real_footage_joined(tmp_path: Path) -> None:
    """Four real clips (different sizes and rates), 60 frames each, joined by hard cuts."""
    from kinema.app.shot_jobs import detect_shots
    from kinema.media import open_video
    from kinema.media.writer import VideoWriter

    clips = [media(n) for n in ("dog.mp4", "coffee.mp4", "juggle.mp4", "bedroom.mp4")]
    path = tmp_path / "joined.mp4"
    with VideoWriter(path, 30, (W, H)) as writer:
        for clip in clips:
            with open_video(clip) as reader:
                start = len(reader) // 3
                for frame in reader.frames(start, start + 60, size=(W, H)):
                    writer.write(frame)
    result = detect_shots(path)
    assert [(t.kind, t.boundary) for t in result.transitions] == [("cut", 60), ("cut", 120), ("cut", 180)]
    assert [(s.start, s.end) for s in result.shots] == [(0, 60), (60, 120), (120, 180), (180, 240)]


def test_cli_json_is_the_shot_list(synthetic_clip: Path) -> None:
    from kinema.app.shot_jobs import detect_shots

    run = subprocess.run([sys.executable, "-m", "kinema", "shots", str(synthetic_clip), "--json"],
                         capture_output=True, text=True, check=True)
    assert json.loads(run.stdout) == json.loads(json.dumps(detect_shots(synthetic_clip).to_dict()))
    plain = subprocess.run([sys.executable, "-m", "kinema", "shots", str(synthetic_clip)],
                           capture_output=True, text=True, check=True)
    assert len(plain.stdout.strip().splitlines()) == 6 and "dissolve" in plain.stdout


def test_cli_shows_progress_on_a_terminal(synthetic_clip: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "kinema", "shots", str(synthetic_clip)], capture_output=True,
                         text=True, check=True, env={**os.environ, "FORCE_COLOR": "1"})
    assert "300/300" in run.stderr and "shots shots.mp4" in run.stderr
    assert len(run.stdout.strip().splitlines()) == 6


def test_cli_a_tiny_video_is_one_error_line(tmp_path: Path) -> None:
    from kinema.media.synth import write_clip

    path = write_clip(tmp_path / "dot.mp4", n=60, size=(1, 1), pix_fmt="yuv444p")
    run = subprocess.run([sys.executable, "-m", "kinema", "shots", str(path)], capture_output=True, text=True)
    assert run.returncode == 1, run
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), run.stderr
    assert str(path) in lines[0] and "1x1" in lines[0] and "full-size footage" in lines[0]
