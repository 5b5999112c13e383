"""Benchmark kinema's shot detector against PySceneDetect on real footage with known transitions.

Usage::

    .venv/bin/python benchmarks/bench_shots.py [--quick] [--out DIR]

The test video joins the four clips in ``../shared/media`` (dog, coffee, juggle, bedroom), every
frame of each, scaled to 1280x720 and written at 30 fps (juggle's 24 fps frames play faster).
Each clip is split in two and the eight pieces are interleaved, so no piece follows its own
continuation: seven transitions, five hard cuts, one 20-frame dissolve (the pieces overlap,
mixed linearly) and one fade (12 frames out to black, 4 black, 12 in). It is made once and
cached in ``--out`` (default ``.bench/``) with its ground truth; ``--quick`` uses 60 frames of
each piece.

A detected boundary matches a hard cut at frame ``c`` when it is within one frame of it, and a
gradual transition when it lies in its span (first mixed frame to first clean frame); each
truth matches at most one boundary, the rest are false positives. kinema's ``detect_shots``
is timed against PySceneDetect's ``ContentDetector`` and ``AdaptiveDetector`` through
``scenedetect.detect`` (OpenCV decoding, its default), in-process, on the same file; each runs
twice, alternating, and the faster run counts. Goals: kinema's F1 ≥ 0.95 and at least the
best PySceneDetect F1, and its whole call at least 2x faster than ``ContentDetector``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from _common import machine_line
from kinema.media.reader import open_video
from kinema.media.writer import VideoWriter

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
CLIPS = ("dog.mp4", "coffee.mp4", "juggle.mp4", "bedroom.mp4")
SIZE = (1280, 720)
FPS = 30
DISSOLVE = 20
FADE_OUT, BLACK, FADE_IN = 12, 4, 12
# Transition after each piece: pieces are dog1 coffee1 juggle1 bedroom1 dog2 coffee2 juggle2 bedroom2.
JOINS = ("cut", "cut", "dissolve", "cut", "fade", "cut", "cut")
SPEED_GOAL, F1_GOAL = 2.0, 0.95
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


def timed(fn: Callable[[Path], list[int]], clip: Path) -> tuple[list[int], float]:
    start = time.perf_counter()
    result = fn(clip)
    return result, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark kinema shot detection against PySceneDetect.")
    parser.add_argument("--quick", action="store_true", help="60 frames of each piece")
    parser.add_argument("--out", type=Path, default=Path(".bench"),
                        help="where the joined clip is cached and bench_shots.md is written")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = machine_line()
    clip, truth = build_video(args.out, 60 if args.quick else None)
    with open_video(clip) as reader:
        frames = len(reader)
    runners: dict[str, Callable[[Path], list[int]]] = {
        "kinema `detect_shots`": run_kinema,
        "PySceneDetect ContentDetector": lambda c: run_scenedetect(c, adaptive=False),
        "PySceneDetect AdaptiveDetector": lambda c: run_scenedetect(c, adaptive=True),
        DECODE: run_decode_only,
    }
    found: dict[str, list[int]] = {}
    times: dict[str, list[float]] = {name: [] for name in runners}
    for run in range(2):
        for name, fn in runners.items():
            progress(f"run {run + 1}/2: {name}")
            found[name], seconds = timed(fn, clip)
            times[name].append(seconds)
    best = {name: min(t) for name, t in times.items()}
    base = best["PySceneDetect ContentDetector"]
    scores = {name: score(found[name], truth) for name in runners if name != DECODE}
    rows = []
    for name in runners:
        p, r, f1 = scores.get(name, (0.0, 0.0, 0.0))
        quality = "| — | — | — " if name == DECODE else f"| {f1:.3f} | {p:.3f} | {r:.3f} "
        rows.append(f"| {name} {quality}| {best[name]:.2f} | {frames / best[name]:.0f} | "
                    f"{base / best[name]:.2f}× |")
    kinema_f1 = scores["kinema `detect_shots`"][2]
    best_psd = max(scores[n][2] for n in scores if n.startswith("PySceneDetect"))
    speed = base / best["kinema `detect_shots`"]
    truth_text = ", ".join(f"{t.kind} {t.start}" + (f"-{t.end}" if t.kind != "cut" else "") for t in truth)
    report = "\n".join([
        "# kinema shot detection benchmark", "", f"Machine: {machine}", "",
        "| Detector | F1 | precision | recall | seconds | frames/s | speed vs ContentDetector |",
        "|---|---|---|---|---|---|---|",
        *rows, "",
        f"{frames} frames at {SIZE[0]}x{SIZE[1]}, {FPS} fps ({clip.name}); truth: {truth_text}.",
        *(f"- {name}: boundaries {found[name]}; runs "
          f"{', '.join(f'{t:.2f}' for t in times[name])} s" for name in scores),
        f"- {DECODE}: the least any detector that looks at every frame can take here.",
        "",
        f"Goals: F1 ≥ {F1_GOAL} and ≥ best PySceneDetect ({best_psd:.3f}): "
        f"{'met' if kinema_f1 >= max(F1_GOAL, best_psd) else 'NOT met'} ({kinema_f1:.3f}); "
        f"speed ≥ {SPEED_GOAL}× ContentDetector: {'met' if speed >= SPEED_GOAL else 'NOT met'} "
        f"({speed:.2f}×).",
    ])
    print(report)
    (args.out / "bench_shots.md").write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
