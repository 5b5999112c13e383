"""Benchmark kinema's shot detector against PySceneDetect on real footage with known transitions.

Usage::

    .venv/bin/python benchmarks/bench_shots.py [--quick] [--runs N] [--out DIR]

Two test videos, made once and cached in ``--out`` (default ``.bench/``) with their truth:

- **joined** (1280x720): the four clips in ``../shared/media`` (dog, coffee, juggle, bedroom),
  every frame of each, scaled to 1280x720 and written at 30 fps (juggle's 24 fps frames play
  faster). Each clip is split in two and the eight pieces are interleaved, so no piece follows
  its own continuation: seven transitions, five hard cuts, one 20-frame dissolve (the pieces
  overlap, mixed linearly) and one fade (12 frames out to black, 4 black, 12 in).
  ``--quick`` uses 60 frames of each piece.
- **davis** (854x480): the twenty DAVIS-2016 training sequences in
  ``../shared/davis-train/videos`` (one continuous shot each, much of it fast motion and
  camera shake), every frame, joined by hard cuts at 24 fps: 1475 frames, 19 cuts. Skipped
  when the folder is absent (and with ``--quick``).

A detected boundary matches a hard cut at frame ``c`` when it is within one frame of it, and a
gradual transition when it lies in its span (first mixed frame to first clean frame); each
truth matches at most one boundary, the rest are false positives. kinema is timed in-process
(``detect_shots``) and as the whole command line (``.venv/bin/kinema shots FILE``: start-up,
imports and printing included) against PySceneDetect's ``ContentDetector`` and
``AdaptiveDetector`` through ``scenedetect.detect`` (OpenCV decoding, its default),
in-process, on the same file, and a plain threaded PyAV decode (the floor for anything that
looks at every frame). Each method runs ``--runs`` times (default 3), interleaved with the
order rotated; its best wall time and best CPU time (all threads; the child's for the command
line) count. Goals: kinema's F1 ≥ 0.97 and at least the best PySceneDetect F1, and the whole
command line at least 2x as fast as PySceneDetect's faster detector.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from _common import machine_line
from kinema.media import open_video
from kinema.media.writer import VideoWriter

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
DAVIS = ROOT.parent / "shared" / "davis-train" / "videos"
KINEMA = ROOT / ".venv" / "bin" / "kinema"
DAVIS_SIZE, DAVIS_FPS = (854, 480), 24
CLIPS = ("dog.mp4", "coffee.mp4", "juggle.mp4", "bedroom.mp4")
SIZE = (1280, 720)
FPS = 30
DISSOLVE = 20
FADE_OUT, BLACK, FADE_IN = 12, 4, 12
# Transition after each piece: pieces are dog1 coffee1 juggle1 bedroom1 dog2 coffee2 juggle2 bedroom2.
JOINS = ("cut", "cut", "dissolve", "cut", "fade", "cut", "cut")
SPEED_GOAL, F1_GOAL = 2.0, 0.97
KINEMA_CALL = "kinema `detect_shots` (in-process)"
KINEMA_CLI = "kinema `kinema shots FILE` (whole command line)"
CONTENT = "PySceneDetect ContentDetector"
ADAPTIVE = "PySceneDetect AdaptiveDetector"
DECODE = "PyAV decode only (reference: no detection)"


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Truth:
    kind: str  # "cut" | "dissolve" | "fade"
    start: int  # a cut's first new frame; a gradual transition's first changed frame
    end: int  # exclusive: the first frame wholly of the new shot

    def matches(self, boundary: int) -> bool:
        if self.kind == "cut":
            return abs(boundary - self.start) <= 1
        return self.start <= boundary <= self.end


def _pieces(per_piece: int | None) -> list[tuple[Path, int, int]]:
    """The eight pieces in playing order, as ``(clip, first frame, stop)``."""
    halves = []
    for name in CLIPS:
        path = MEDIA / name
        if not path.is_file():
            raise SystemExit(f"error: {path} is missing; the benchmark joins the shared sample clips")
        with open_video(path) as reader:
            n = len(reader)
        mid = n // 2
        halves.append(((path, 0, mid), (path, mid, n)))
    pieces = [h[0] for h in halves] + [h[1] for h in halves]
    if per_piece is not None:
        pieces = [(p, a, min(b, a + per_piece)) for p, a, b in pieces]
    return pieces


def _frames(piece: tuple[Path, int, int]) -> Iterator[np.ndarray]:
    path, start, stop = piece
    with open_video(path) as reader:
        yield from reader.frames(start, stop, size=SIZE)


def build_video(out: Path, per_piece: int | None) -> tuple[Path, list[Truth]]:
    """The joined test video and its transitions; made once, then cached with a JSON sidecar."""
    name = f"shots_{SIZE[1]}p_{per_piece or 'all'}"
    clip, sidecar = out / f"{name}.mp4", out / f"{name}.json"
    if clip.exists() and sidecar.exists():
        return clip, [Truth(**t) for t in json.loads(sidecar.read_text())]
    progress("joining the sample clips at 1280x720, 30 fps")
    pieces = _pieces(per_piece)
    keep = max(DISSOLVE, FADE_OUT)
    truth: list[Truth] = []
    written = 0
    tail: list[np.ndarray] = []  # the last frames, held back for the next transition to change
    with VideoWriter(clip, FPS, SIZE, overwrite=True) as writer:

        def emit(frame: np.ndarray) -> None:
            nonlocal written
            tail.append(frame)
            if len(tail) > keep:
                writer.write(tail.pop(0))
                written += 1

        for frame in _frames(pieces[0]):
            emit(frame)
        for join, piece in zip(JOINS, pieces[1:], strict=True):
            incoming = _frames(piece)
            here = written + len(tail)  # index of the next frame
            if join == "cut":
                truth.append(Truth("cut", here, here + 1))
            elif join == "dissolve":
                for k in range(DISSOLVE):
                    a = (k + 1) / (DISSOLVE + 1)
                    old = tail[len(tail) - DISSOLVE + k].astype(np.float32)
                    mixed = (1 - a) * old + a * next(incoming).astype(np.float32)
                    tail[len(tail) - DISSOLVE + k] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
                truth.append(Truth("dissolve", here - DISSOLVE, here))
            else:
                for k in range(FADE_OUT):
                    gain = 1 - (k + 1) / FADE_OUT
                    i = len(tail) - FADE_OUT + k
                    tail[i] = (tail[i] * gain + 0.5).astype(np.uint8)
                for _ in range(BLACK):
                    emit(np.zeros((SIZE[1], SIZE[0], 3), np.uint8))
                for k in range(FADE_IN):
                    emit((next(incoming) * ((k + 1) / (FADE_IN + 1)) + 0.5).astype(np.uint8))
                truth.append(Truth("fade", here - FADE_OUT, here + BLACK + FADE_IN))
            for frame in incoming:
                emit(frame)
        for frame in tail:
            writer.write(frame)
    sidecar.write_text(json.dumps([t.__dict__ for t in truth]))
    return clip, truth


def build_davis(out: Path) -> tuple[Path, list[Truth]] | None:
    """The DAVIS sequences joined by hard cuts, or ``None`` when they are not here."""
    clips = sorted(DAVIS.glob("*.mp4"))
    if not clips:
        return None
    clip, sidecar = out / "shots_davis_480p.mp4", out / "shots_davis_480p.json"
    if clip.exists() and sidecar.exists():
        return clip, [Truth(**t) for t in json.loads(sidecar.read_text())]
    progress(f"joining {len(clips)} DAVIS sequences at {DAVIS_SIZE[0]}x{DAVIS_SIZE[1]}")
    truth: list[Truth] = []
    written = 0
    with VideoWriter(clip, DAVIS_FPS, DAVIS_SIZE, overwrite=True) as writer:
        for path in clips:
            if written:
                truth.append(Truth("cut", written, written + 1))
            with open_video(path) as reader:
                for frame in reader.frames(size=DAVIS_SIZE):
                    writer.write(frame)
                    written += 1
    sidecar.write_text(json.dumps([t.__dict__ for t in truth]))
    return clip, truth


def score(boundaries: Sequence[int], truth: Sequence[Truth]) -> tuple[float, float, float]:
    """Precision, recall and F1 of shot boundaries against the truth (one-to-one matches)."""
    unmatched = list(truth)
    hits = 0
    for b in sorted(boundaries):
        for t in unmatched:
            if t.matches(b):
                unmatched.remove(t)
                hits += 1
                break
    precision = hits / len(boundaries) if boundaries else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def run_kinema(clip: Path) -> list[int]:
    from kinema.app.shot_jobs import detect_shots

    return [shot.start for shot in detect_shots(clip).shots[1:]]


def run_kinema_cli(clip: Path) -> list[int]:
    """The command a user types, in a fresh process; boundaries from its ``--json``."""
    done = subprocess.run([str(KINEMA), "shots", str(clip), "--json"], capture_output=True,
                          text=True, check=True)
    return [shot["start"] for shot in json.loads(done.stdout)["shots"][1:]]


def run_scenedetect(clip: Path, adaptive: bool) -> list[int]:
    from scenedetect import AdaptiveDetector, ContentDetector, detect

    detector = AdaptiveDetector() if adaptive else ContentDetector()
    return [start.frame_num for start, _ in detect(str(clip), detector)[1:]]


def run_decode_only(clip: Path) -> list[int]:
    """The floor for any detector that looks at every frame: PyAV decoding it, threaded."""
    import av

    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            pass
    return []


@dataclass
class Timing:
    """One method's runs on one clip: wall and CPU seconds (all threads, or the child's)."""

    wall: list[float]
    cpu: list[float]


def timed(fn: Callable[[Path], list[int]], clip: Path) -> tuple[list[int], float, float]:
    """``fn(clip)``, its wall seconds and the CPU seconds of this process and its children."""
    def cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    start, cpu0 = time.perf_counter(), cpu()
    result = fn(clip)
    return result, time.perf_counter() - start, cpu() - cpu0


RUNNERS: dict[str, Callable[[Path], list[int]]] = {
    KINEMA_CALL: run_kinema,
    KINEMA_CLI: run_kinema_cli,
    CONTENT: lambda c: run_scenedetect(c, adaptive=False),
    ADAPTIVE: lambda c: run_scenedetect(c, adaptive=True),
    DECODE: run_decode_only,
}


def measure(clip: Path, runs: int) -> tuple[dict[str, list[int]], dict[str, Timing]]:
    """Boundaries found by each runner and its timings, ``runs`` rounds, order rotated."""
    found: dict[str, list[int]] = {}
    timings = {name: Timing([], []) for name in RUNNERS}
    names = list(RUNNERS)
    for run in range(runs):
        for name in names[run % len(names):] + names[:run % len(names)]:
            progress(f"{clip.name} run {run + 1}/{runs}: {name}")
            found[name], wall, cpu = timed(RUNNERS[name], clip)
            timings[name].wall.append(wall)
            timings[name].cpu.append(cpu)
    return found, timings


def section(title: str, clip: Path, truth: list[Truth], runs: int) -> list[str]:
    """The table and notes for one test video."""
    with open_video(clip) as reader:
        frames, (w, h), fps = len(reader), reader.size, reader.fps
    found, timings = measure(clip, runs)
    wall = {name: min(t.wall) for name, t in timings.items()}
    cpu = {name: min(t.cpu) for name, t in timings.items()}
    fastest = min((CONTENT, ADAPTIVE), key=lambda n: wall[n])
    scores = {name: score(found[name], truth) for name in RUNNERS if name != DECODE}
    rows = []
    for name in RUNNERS:
        p, r, f1 = scores.get(name, (0.0, 0.0, 0.0))
        quality = "| — | — | — " if name == DECODE else f"| {f1:.3f} | {p:.3f} | {r:.3f} "
        rows.append(f"| {name} {quality}| {wall[name]:.2f} | {frames / wall[name]:.0f} | "
                    f"{wall[fastest] / wall[name]:.2f}× | {cpu[name]:.2f} | "
                    f"{cpu[fastest] / cpu[name]:.2f}× |")
    kinema_f1 = scores[KINEMA_CALL][2]
    best_psd = max(scores[CONTENT][2], scores[ADAPTIVE][2])
    speed = wall[fastest] / wall[KINEMA_CLI]
    truth_text = ", ".join(f"{t.kind} {t.start}" + (f"-{t.end}" if t.kind != "cut" else "") for t in truth)
    return [
        f"## {title}", "",
        f"{frames} frames at {w}x{h}, {fps} fps ({clip.name}); truth: {truth_text}.", "",
        "| Detector | F1 | precision | recall | best wall s | frames/s | speed vs faster PySceneDetect "
        "| best CPU s | CPU vs faster PySceneDetect |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
        *rows, "",
        *(f"- {name}: boundaries {found[name]}; wall {', '.join(f'{t:.2f}' for t in timings[name].wall)} s, "
          f"CPU {', '.join(f'{t:.2f}' for t in timings[name].cpu)} s" for name in scores),
        f"- {DECODE}: the least any detector that looks at every frame can take here.",
        "",
        f"Goals: F1 ≥ {F1_GOAL} and ≥ best PySceneDetect ({best_psd:.3f}): "
        f"{'met' if kinema_f1 >= max(F1_GOAL, best_psd) else 'NOT met'} ({kinema_f1:.3f}); "
        f"whole command line ≥ {SPEED_GOAL}× the faster PySceneDetect ({fastest.split()[-1]}): "
        f"{'met' if speed >= SPEED_GOAL else 'NOT met'} ({speed:.2f}×).", "",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark kinema shot detection against PySceneDetect.")
    parser.add_argument("--quick", action="store_true", help="60 frames of each piece, no DAVIS video")
    parser.add_argument("--runs", type=int, default=3, help="rounds of every method (best counts)")
    parser.add_argument("--out", type=Path, default=Path(".bench"),
                        help="where the test videos are cached and bench_shots.md is written")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = machine_line()
    lines = ["# kinema shot detection benchmark", "", f"Machine: {machine}", ""]
    clip, truth = build_video(args.out, 60 if args.quick else None)
    lines += section("joined: the shared clips at 1280x720", clip, truth, args.runs)
    davis = None if args.quick else build_davis(args.out)
    if davis is None:
        lines += ["(davis: skipped)", ""]
    else:
        lines += section("davis: 20 DAVIS sequences at 854x480", *davis, args.runs)
    report = "\n".join(lines)
    print(report)
    (args.out / "bench_shots.md").write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
