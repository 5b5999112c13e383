"""Interpolation timing: in-betweens on a variable-frame-rate source follow its real frame
times, and across a hard cut a source frame is repeated instead of a ghost of two shots.

The clips are synthetic with known ground truth: the times each frame was written at, the
frame a cut begins at, a square moving at a constant speed in real time. Outputs are PNG
sequences (lossless), compared with the source frames as kinema decodes them.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from kinema.core.jobs import run
from kinema.generate.rife import Blend, blend
from kinema.media.synth import pattern_frame

SIZE = (160, 96)
STEPS_MS = [33, 40, 50, 67, 100, 17, 83]  # frame durations of the variable-rate clips


def vfr_times(n: int) -> list[Fraction]:
    times = [Fraction(0)]
    for i in range(n - 1):
        times.append(times[-1] + Fraction(STEPS_MS[(i * 5) % len(STEPS_MS)], 1000))
    return times


def write_vfr(path: Path, frames: list[np.ndarray], times: list[Fraction]) -> Path:
    from kinema.media.writer import VideoWriter

    with VideoWriter(path, 30, (frames[0].shape[1], frames[0].shape[0]),
                     time_base=Fraction(1, 1000)) as writer:
        for frame, t in zip(frames, times, strict=True):
            writer.write(frame, t)
    return path


def decoded(path: Path) -> list[np.ndarray]:
    from kinema.media import open_video

    with open_video(path, prefetch=False) as reader:
        return [reader[i] for i in range(len(reader))]


def sequence(folder: Path) -> list[np.ndarray]:
    from kinema.media.image import read_image

    return [read_image(p) for p in sorted(folder.glob("*.png"))]


def other_shot(i: int) -> np.ndarray:
    """A frame of a second, unrelated shot: the pattern mirrored and inverted."""
    return np.ascontiguousarray(255 - pattern_frame(i, *SIZE)[:, ::-1])


@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 frames at 24 fps, a hard cut at frame 12 (frame numbers in the pixels)."""
    from kinema.media.writer import VideoWriter

    path = tmp_path_factory.mktemp("cut") / "cut.mp4"
    with VideoWriter(path, 24, SIZE) as writer:
        for i in range(24):
            writer.write(pattern_frame(i, *SIZE) if i < CUT else other_shot(i))
    return path


CUT = 12


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Fraction]]:
    times = vfr_times(16)
    path = tmp_path_factory.mktemp("vfr") / "vfr.mkv"
    return write_vfr(path, [pattern_frame(i, *SIZE) for i in range(len(times))], times), times


# ---- timing -------------------------------------------------------------------------------------

def test_source_positions_by_hand() -> None:
    from kinema.app.restore_jobs import source_positions

    times = [Fraction(0), Fraction(1, 10), Fraction(15, 100), Fraction(35, 100)]
    got = list(source_positions(9, Fraction(20), frames=4, times=times))
    # output frames every 50 ms: 0, 50, 100, 150, 200, 250, 300 ms fall in the real gaps
    # (0-100, 100-150, 150-350 ms); from 350 ms on, the last frame is held
    assert got == [(0, 0), (0, Fraction(1, 2)), (1, 0), (2, 0), (2, Fraction(1, 4)),
                   (2, Fraction(1, 2)), (2, Fraction(3, 4)), (3, 0), (3, 0)]
    # a constant rate: frame i at i / fps exactly
    assert list(source_positions(5, Fraction(50), frames=3, fps=Fraction(20))) == [
        (0, 0), (0, Fraction(2, 5)), (0, Fraction(4, 5)), (1, Fraction(1, 5)), (1, Fraction(3, 5))]


def test_vfr_in_betweens_are_weighted_by_real_timestamps(vfr_clip, tmp_path: Path) -> None:
    from kinema.app.restore_jobs import interpolate_video

    src, times = vfr_clip
    source = decoded(src)
    rate = Fraction(40)
    result = run(interpolate_video(src, tmp_path / "out", fps=rate, interpolator=Blend(),
                                   backend="blend"))
    out = sequence(tmp_path / "out")
    duration = times[-1] + Fraction(50, 1000)  # the reader's duration: the last frame lasts 50 ms
    assert result.vfr and result.rate == rate and len(out) == int(duration * rate) == result.frames
    cfr_would_differ = 0
    for k, frame in enumerate(out):
        at = Fraction(k) / rate  # the ground truth: the times the frames were written at
        i = max(j for j in range(len(times)) if times[j] <= at)
        if i == len(times) - 1:
            expected = source[i]
        else:
            t = (at - times[i]) / (times[i + 1] - times[i])
            expected = source[i] if t == 0 else blend(source[i], source[i + 1], float(t))
        assert np.array_equal(frame, expected), f"output frame {k} at {at}s"
        # what treating the clip as constant-rate (frame i at i / 18.45 fps) would have shown
        position = at * Fraction(len(times) - 1) / times[-1]
        j, u = int(position), position - int(position)
        naive = source[min(j, len(times) - 1)] if u == 0 or j >= len(times) - 1 else \
            blend(source[j], source[j + 1], float(u))
        cfr_would_differ += not np.array_equal(naive, expected)
    assert cfr_would_differ > len(out) // 2


def test_vfr_factor_doubles_the_average_rate_on_real_times(vfr_clip, tmp_path: Path) -> None:
    from kinema.app.restore_jobs import interpolate_video
    from kinema.media import open_video

    src, times = vfr_clip
    with open_video(src) as reader:
        average = reader.fps
    notes: list[str] = []
    result = run(interpolate_video(src, tmp_path / "out", factor=2, interpolator=Blend(),
                                   backend="blend"),
                 on_progress=lambda e: e.message and notes.append(e.message))
    assert result.rate == 2 * average
    assert any("variable frame rate" in n and "--fps" in n for n in notes)
    source, out = decoded(src), sequence(tmp_path / "out")
    for k in (1, 5, 9):
        at = Fraction(k) / result.rate
        i = max(j for j in range(len(times)) if times[j] <= at)
        t = (at - times[i]) / (times[i + 1] - times[i])
        assert np.array_equal(out[k], blend(source[i], source[i + 1], float(t)))


SQUARE = 24


def square_scene(x: float, w: int = 192, h: int = 96) -> np.ndarray:
    """A textured square at column ``x`` (rounded) over a textured background."""
    rng = np.random.default_rng(1)
    frame = (rng.random((h // 4, w // 4, 3)) * 80 + 40).astype(np.uint8).repeat(4, 0).repeat(4, 1)
    tex = (rng.random((SQUARE // 2, SQUARE // 2, 3)) * 255).astype(np.uint8).repeat(2, 0).repeat(2, 1)
    y, x = h // 2 - SQUARE // 2, int(round(x))
    frame[y:y + SQUARE, x:x + SQUARE] = tex
    return frame


def square_x(frame: np.ndarray) -> int:
    tex = square_scene(0)[36:60, 0:SQUARE].astype(np.float32)
    scores = [np.abs(frame[36:60, x:x + SQUARE].astype(np.float32) - tex).mean()
              for x in range(frame.shape[1] - SQUARE)]
    return int(np.argmin(scores))


def test_rife_on_a_vfr_clip_puts_the_square_where_real_time_does(tmp_path: Path) -> None:
    """A square moving at 150 px/s in real time, filmed at irregular times: every output
    frame at 30 fps shows it where it was at that instant."""
    pytest.importorskip("torch")
    from kinema.app.restore_jobs import interpolate_video
    from test_restore import bundled_or_skip

    bundled_or_skip("rife", "flownet.pkl")
    speed, times = 150, vfr_times(9)  # 0.41 s, 61 px
    src = write_vfr(tmp_path / "moving.mkv", [square_scene(20 + speed * t) for t in times], times)
    result = run(interpolate_video(src, tmp_path / "out", fps=30, backend="rife", device="cpu"))
    out = sequence(tmp_path / "out")
    assert result.cuts == () and result.held == 0  # steady motion is not a cut
    last = times[-1]
    for k, frame in enumerate(out):
        at = min(Fraction(k, 30), last)
        assert abs(square_x(frame) - (20 + speed * at)) <= 2.5, f"output frame {k} at {float(at):.3f}s"


# ---- the cut guard ------------------------------------------------------------------------------

def test_cut_guard_repeats_a_source_frame_at_a_hard_cut(cut_clip, tmp_path: Path) -> None:
    from kinema.app.restore_jobs import interpolate_video

    notes: list[str] = []
    result = run(interpolate_video(cut_clip, tmp_path / "out", factor=3, interpolator=Blend(),
                                   backend="blend"),
                 on_progress=lambda e: e.message and notes.append(e.message))
    assert result.cuts == (CUT,) and result.held == 2
    assert any("cut guard" in n and "--no-cut-guard" in n for n in notes)
    source, out = decoded(cut_clip), sequence(tmp_path / "out")
    assert len(out) == 72
    for k, frame in enumerate(out):
        i, step = divmod(k, 3)
        if step == 0:
            assert np.array_equal(frame, source[i])
        elif i == len(source) - 1:
            assert np.array_equal(frame, source[i])  # the last frame held
        elif i + 1 == CUT:  # the nearer source frame: 1/3 of the way is 11, 2/3 is 12
            assert np.array_equal(frame, source[i if step == 1 else i + 1]), f"output frame {k}"
        else:  # elsewhere an in-between, neither source frame
            assert np.array_equal(frame, blend(source[i], source[i + 1], step / 3))
            assert not np.array_equal(frame, source[i]) and not np.array_equal(frame, source[i + 1])


def test_no_cut_guard_interpolates_across_the_cut(cut_clip, tmp_path: Path) -> None:
    from kinema.app.restore_jobs import interpolate_video

    result = run(interpolate_video(cut_clip, tmp_path / "out", factor=2, interpolator=Blend(),
                                   backend="blend", cut_guard=False))
    assert result.cuts == () and result.held == 0
    source, out = decoded(cut_clip), sequence(tmp_path / "out")
    ghost = out[2 * (CUT - 1) + 1]
    assert np.array_equal(ghost, blend(source[CUT - 1], source[CUT], 0.5))
    guarded = run(interpolate_video(cut_clip, tmp_path / "guarded", factor=2, interpolator=Blend(),
                                    backend="blend"))
    assert guarded.held == 1  # at the middle, the earlier frame: what the source shows then
    assert np.array_equal(sequence(tmp_path / "guarded")[2 * (CUT - 1) + 1], source[CUT - 1])


def test_cut_guard_on_the_command_line(cut_clip, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kinema.cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["interpolate", str(cut_clip), "-o", str(tmp_path / "a"),
                                 "--factor", "2", "--backend", "blend"])
    assert result.exit_code == 0, result.output
    assert "cut guard: 1 hard cut(s), at source frame(s) 12" in result.output
    result = runner.invoke(app, ["interpolate", str(cut_clip), "-o", str(tmp_path / "b"),
                                 "--factor", "2", "--backend", "blend", "--no-cut-guard"])
    assert result.exit_code == 0 and "cut guard" not in result.output
    a, b = sequence(tmp_path / "a"), sequence(tmp_path / "b")
    assert [k for k in range(len(a)) if not np.array_equal(a[k], b[k])] == [2 * (CUT - 1) + 1]
