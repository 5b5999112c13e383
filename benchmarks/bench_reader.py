"""Benchmark kinema's video reader against plain PyAV and OpenCV, in one run, on one clip.

Usage::

    .venv/bin/python benchmarks/bench_reader.py [--quick] [--out DIR] [--seed N]

The clip is generated: 1080p H.264 with B-frames (3) and a 120-frame GOP, 20 s at 30 fps
(``--quick``: 4 s and fewer iterations). Every frame encodes its own index, so every frame
a method returns is checked with :func:`kinema.media.synth.decode_index`. The clip is cached
in ``--out`` (default ``.bench/``); the report is printed and written to
``--out/bench_reader.md``.

Each measurement runs against its baseline in the same run:

1. Sequential decode to RGB: ``VideoReader.frames()`` against a threaded PyAV decode loop.
2. Random jumps: ``reader[i]`` with the cache emptied and a seek forced (prefetch off)
   against the textbook exact seek (keyframe before the target, then decode forward to its
   pts) and against OpenCV's ``CAP_PROP_POS_FRAMES`` seek.
3. Scrubbing: after a jump, 60 steps of +-1..10 frames paced at 30 Hz, prefetch on,
   against the textbook seek for every step.
4. Proxy jumps: the jumps of 2 through the 540p all-intra proxy against the source.

Baselines convert with ``frame.to_ndarray(format="rgb24")`` (plain PyAV); kinema converts
with its own ``kinema.media.convert.to_rgb``.
"""

from __future__ import annotations

import argparse
import bisect
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from _common import machine_line
from kinema.media import VideoReader, open_video
from kinema.media.proxy import ensure_proxy
from kinema.media.synth import decode_index, write_clip

SIZE = (1920, 1080)
FPS = 30
GOP = 120
BFRAMES = 3
SCRUB_STEPS = 60
SCRUB_MAX_STEP = 10
SCRUB_PERIOD = 1 / 30
# decode_index still reads a frame subsampled this much (its cells are 1/14 of the height).
CHECK_STRIDE = 4

# Seconds one request took and the RGB frame it returned (None: the method returned nothing).
Probe = Callable[[int], tuple[float, np.ndarray | None]]


@dataclass(frozen=True)
class Config:
    """How much to measure."""

    frames: int
    sequential_passes: int
    jumps: int
    scrub_sessions: int


FULL = Config(frames=600, sequential_passes=5, jumps=60, scrub_sessions=5)
QUICK = Config(frames=120, sequential_passes=2, jumps=10, scrub_sessions=2)


@dataclass(frozen=True)
class Latency:
    """Per-request latencies in seconds and how many requests returned the wrong frame."""

    seconds: Sequence[float]
    wrong: int

    @property
    def mean_ms(self) -> float:
        return 1000 * float(np.mean(self.seconds))

    @property
    def p95_ms(self) -> float:
        return 1000 * float(np.percentile(self.seconds, 95))

    @property
    def wrong_text(self) -> str:
        return f"{self.wrong}/{len(self.seconds)}"


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    measurement: str
    kinema: str
    baseline: str
    ratio: str = "—"
    goal: str = "—"
    met: str = "—"


class TextbookSeeker:
    """The textbook exact seek: to the keyframe before the target, then decode to its pts."""

    def __init__(self, path: Path) -> None:
        self.container = av.open(str(path))
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        pts: list[int] = []
        key_pts: list[int] = []
        for packet in self.container.demux(self.stream):
            if packet.pts is None:
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                key_pts.append(packet.pts)
        self.pts = sorted(pts)
        self.key_pts = sorted(key_pts)

    def __getitem__(self, i: int) -> np.ndarray:
        target = self.pts[i]
        key = self.key_pts[bisect.bisect_right(self.key_pts, target) - 1]
        self.container.seek(key, stream=self.stream, backward=True)
        for frame in self.container.decode(self.stream):
            if frame.pts == target:
                return frame.to_ndarray(format="rgb24")
        raise LookupError(f"frame {i} (pts {target}) never came out of the decoder")

    def close(self) -> None:
        self.container.close()


def ensure_clip(out: Path, frames: int) -> Path:
    """The benchmark clip in ``out``, encoded on first use (atomically, so reruns can trust it)."""
    w, h = SIZE
    path = out / f"clip-{w}x{h}-{frames}f-gop{GOP}-b{BFRAMES}.mp4"
    if not path.is_file():
        progress(f"encoding {path}")
        partial = path.with_name(f"{path.stem}.partial.mp4")
        write_clip(partial, frames, size=SIZE, fps=FPS, gop=GOP, bframes=BFRAMES)
        os.replace(partial, path)
    return path


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    frame = fn()
    return time.perf_counter() - t0, frame


# -- 1. sequential decode ------------------------------------------------------------------


@dataclass(frozen=True)
class Pass:
    """One sequential pass: frames/s, and per frame the process's CPU ms (all threads) and
    minor page faults, which a loaded machine does not change."""

    fps: float
    cpu_ms: float
    faults: float


def usage() -> tuple[float, int]:
    """CPU seconds of every thread of this process so far, and its minor page faults."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_minflt


def finish(count: int, t0: float, u0: tuple[float, int]) -> Pass:
    elapsed, (cpu, faults) = time.perf_counter() - t0, usage()
    return Pass(count / elapsed, 1000 * (cpu - u0[0]) / count, (faults - u0[1]) / count)


def sequential_kinema(path: Path, n: int) -> Pass:
    """``open_video(path).frames()``, default options, opening not timed."""
    with open_video(path) as reader:
        last: np.ndarray | None = None
        count = 0
        u0, t0 = usage(), time.perf_counter()
        for frame in reader.frames():
            last = frame
            count += 1
        result = finish(count, t0, u0)
    check_sequential("kinema", count, n, last)
    return result


def sequential_pyav(path: Path, n: int) -> Pass:
    """A threaded PyAV decode loop converting with ``to_ndarray``."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        last: np.ndarray | None = None
        count = 0
        u0, t0 = usage(), time.perf_counter()
        for frame in container.decode(stream):
            last = frame.to_ndarray(format="rgb24")
            count += 1
        result = finish(count, t0, u0)
    check_sequential("PyAV", count, n, last)
    return result


def check_sequential(who: str, count: int, n: int, last: np.ndarray | None) -> None:
    got = None if last is None else decode_index(last)
    if count != n or got != n - 1:
        raise SystemExit(f"{who}: sequential decode gave {count} of {n} frames, "
                         f"the last one being frame {got}")


def measure_sequential(path: Path, n: int, passes: int) -> tuple[Pass, Pass]:
    """Median frames/s, CPU and faults of kinema and of PyAV over ``passes`` passes each, after
    one untimed pass of each; the order alternates, since on this shared machine the same loop
    varies by a quarter from one pass to the next."""
    sequential_pyav(path, n)
    sequential_kinema(path, n)
    kinema: list[Pass] = []
    pyav: list[Pass] = []
    for k in range(passes):
        progress(f"sequential pass {k + 1}/{passes}")
        if k % 2:
            kinema.append(sequential_kinema(path, n))
            pyav.append(sequential_pyav(path, n))
        else:
            pyav.append(sequential_pyav(path, n))
            kinema.append(sequential_kinema(path, n))
    return median_pass(kinema), median_pass(pyav)


def median_pass(passes: Sequence[Pass]) -> Pass:
    return Pass(statistics.median(p.fps for p in passes), statistics.median(p.cpu_ms for p in passes),
                statistics.median(p.faults for p in passes))


# -- 2 and 4. random jumps -----------------------------------------------------------------


def cold_jump(reader: VideoReader) -> Probe:
    """``reader[i]`` with nothing decoded before able to help: ``clear_cache()`` empties the
    frame cache and makes the next read seek."""
    def probe(i: int) -> tuple[float, np.ndarray | None]:
        reader.clear_cache()
        return timed(lambda: reader[i])
    return probe


def textbook_jump(seeker: TextbookSeeker) -> Probe:
    """``seeker[i]`` on the one seeker opened for all jumps."""
    def probe(i: int) -> tuple[float, np.ndarray | None]:
        return timed(lambda: seeker[i])
    return probe


def opencv_jump(cap: cv2.VideoCapture) -> Probe:
    """``CAP_PROP_POS_FRAMES`` then ``read()``; the BGR frame is flipped to RGB untimed."""
    def probe(i: int) -> tuple[float, np.ndarray | None]:
        t0 = time.perf_counter()
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, frame = cap.read()
        elapsed = time.perf_counter() - t0
        return elapsed, frame[..., ::-1] if ok else None
    return probe


def measure_jumps(path: Path, targets: Sequence[int]) -> dict[str, Latency]:
    """Latencies of kinema (source and proxy), the textbook seek and OpenCV, interleaved.

    Each method keeps one reader (or container, or capture) open for all jumps, and makes
    one untimed jump to the last frame first.
    """
    with ExitStack() as stack:
        seeker = TextbookSeeker(path)
        stack.callback(seeker.close)
        cap = cv2.VideoCapture(str(path))
        stack.callback(cap.release)
        source = stack.enter_context(open_video(path, prefetch=False))
        proxy = stack.enter_context(open_video(path, proxy=True, prefetch=False))
        probes = {"kinema": cold_jump(source), "textbook": textbook_jump(seeker),
                  "opencv": opencv_jump(cap), "proxy": cold_jump(proxy)}
        for probe in probes.values():  # warm-up, untimed: the first decode allocates buffers
            probe(len(source) - 1)
        seconds: dict[str, list[float]] = {name: [] for name in probes}
        wrong = dict.fromkeys(probes, 0)
        for k, i in enumerate(targets):
            progress(f"jump {k + 1}/{len(targets)} to frame {i}")
            names = list(probes)
            for name in names[k % len(names):] + names[:k % len(names)]:  # rotate who goes first
                dt, frame = probes[name](i)
                seconds[name].append(dt)
                wrong[name] += frame is None or decode_index(frame) != i
    return {name: Latency(seconds[name], wrong[name]) for name in probes}


# -- 3. scrubbing --------------------------------------------------------------------------


def scrub_indices(rng: random.Random, n: int) -> list[int]:
    """A random frame, then ``SCRUB_STEPS`` steps of +-1..``SCRUB_MAX_STEP``, clamped."""
    i = rng.randrange(n)
    indices = [i]
    for _ in range(SCRUB_STEPS):
        i = min(n - 1, max(0, i + rng.choice((-1, 1)) * rng.randint(1, SCRUB_MAX_STEP)))
        indices.append(i)
    return indices


def scrub(get: Callable[[int], np.ndarray], indices: Sequence[int]) -> Latency:
    """Request ``indices`` at 30 Hz: each starts a period after the previous one started (at
    once when that one ran late). The first request is the jump and is not counted.

    Frames are checked after the session, from small copies: ``decode_index`` takes tens of
    ms on a 1080p frame, and keeping whole frames would make every request touch new memory.
    """
    seconds: list[float] = []
    checks: list[np.ndarray] = []
    for i in indices:
        start = time.perf_counter()
        frame = get(i)
        seconds.append(time.perf_counter() - start)
        checks.append(frame[::CHECK_STRIDE, ::CHECK_STRIDE].copy())
        time.sleep(max(0.0, start + SCRUB_PERIOD - time.perf_counter()))
    wrong = sum(decode_index(c) != i for c, i in zip(checks[1:], indices[1:], strict=True))
    return Latency(seconds[1:], wrong)


def combine(parts: Sequence[Latency]) -> Latency:
    return Latency([s for p in parts for s in p.seconds], sum(p.wrong for p in parts))


def measure_scrub(path: Path, sessions: Sequence[Sequence[int]]) -> tuple[Latency, Latency]:
    """kinema (fresh reader per session, prefetch on) and the textbook seek on the same paths."""
    kinema: list[Latency] = []
    textbook: list[Latency] = []
    for k, indices in enumerate(sessions):
        progress(f"scrub session {k + 1}/{len(sessions)} from frame {indices[0]}")
        with open_video(path) as reader:
            kinema.append(scrub(reader.__getitem__, indices))
        seeker = TextbookSeeker(path)
        try:
            textbook.append(scrub(seeker.__getitem__, indices))
        finally:
            seeker.close()
    return combine(kinema), combine(textbook)


# -- report --------------------------------------------------------------------------------


def goal(text: str, met: bool) -> dict[str, str]:
    return {"goal": text, "met": "yes" if met else "**no**"}


def latency_rows(what: str, kinema: Latency, base: Latency, *, mean_speedup: float | None = None,
                 p95_max_ms: float | None = None) -> list[Row]:
    """Mean, p95 and wrong-frame rows; the ratio is baseline / kinema (above 1: kinema faster)."""
    mean_ratio = base.mean_ms / kinema.mean_ms
    mean_goal = {} if mean_speedup is None else goal(f"≥ {mean_speedup:g}×",
                                                     mean_ratio >= mean_speedup)
    p95_goal = {} if p95_max_ms is None else goal(f"kinema ≤ {p95_max_ms:g} ms",
                                                  kinema.p95_ms <= p95_max_ms)
    return [
        Row(f"{what}: mean ms", f"{kinema.mean_ms:.1f}", f"{base.mean_ms:.1f}",
            f"{mean_ratio:.2f}×", **mean_goal),
        Row(f"{what}: p95 ms", f"{kinema.p95_ms:.1f}", f"{base.p95_ms:.1f}",
            f"{base.p95_ms / kinema.p95_ms:.2f}×", **p95_goal),
        Row(f"{what}: wrong frames", kinema.wrong_text, base.wrong_text,
            **goal("kinema 0", kinema.wrong == 0)),
    ]


def table(rows: Sequence[Row]) -> str:
    lines = ["| measurement | kinema | baseline | ratio | goal | met? |",
             "|---|--:|--:|--:|---|---|"]
    lines += [f"| {r.measurement} | {r.kinema} | {r.baseline} | {r.ratio} | {r.goal} | {r.met} |"
              for r in rows]
    return "\n".join(lines)


def notes(config: Config, n: int, quick: bool, seed: int, hwaccel: str,
          proxy_build_s: float) -> list[str]:
    """How the clip was made and each measurement taken, for the lines under the table."""
    w, h = SIZE
    return [
        (f"Clip: {w}x{h} H.264 (libx264 veryfast), {n} frames at {FPS} fps, GOP {GOP}, "
         f"{BFRAMES} B-frames{' (--quick)' if quick else ''}; seed {seed}; "
         f"kinema hardware decoding: {hwaccel}."),
        "",
        ("- ratio: kinema / baseline for frames/s, baseline / kinema for latencies; "
         "above 1 means kinema is better."),
        ("- Baselines convert with plain PyAV `frame.to_ndarray(format=\"rgb24\")` "
         "(OpenCV: its own BGR conversion); kinema with `kinema.media.convert.to_rgb`."),
        (f"- Sequential: median of {config.sequential_passes} passes each over the whole "
         "clip, order alternating, after one untimed pass each; opening not timed; the "
         "kinema reader is opened with default options (prefetch on). CPU and page faults: "
         "the whole process's (every thread), per frame; both loops run in one process, so "
         "they share its allocator (see `kinema.media.reader._keep_frame_buffers`)."),
        (f"- Random jump: {config.jumps} uniform random targets in [0, {n}), the methods "
         "interleaved per target with the order rotated, each opened once for all jumps "
         "and warmed up by one "
         "untimed jump to the last frame. kinema: one "
         "`open_video(path, prefetch=False)` whose `clear_cache()` runs before every jump "
         "(empties the frame cache, makes the next read seek), so nothing decoded before "
         "helps. Textbook: threaded PyAV, `container.seek(keyframe pts, backward=True)`, "
         "decode to the target pts (pts list from one demux pass)."),
        (f"- Scrub: {config.scrub_sessions} sessions of a jump (not counted) then "
         f"{SCRUB_STEPS} steps of ±1..{SCRUB_MAX_STEP} frames, each starting "
         f"{1000 * SCRUB_PERIOD:.1f} ms after the previous start (at once if it ran late); "
         "kinema: a fresh `open_video(path)` per session, prefetch on; the textbook seek "
         "runs the same steps. Frames are checked after each session (subsampled 4×)."),
        ("- Proxy jump: the random-jump targets, the same way, on one "
         "`open_video(path, proxy=True, prefetch=False)`; building the 540p proxy took "
         f"{proxy_build_s:.1f} s (not in the table)."),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark kinema's video reader against PyAV and OpenCV baselines.")
    parser.add_argument("--quick", action="store_true", help="4 s clip, fewer iterations")
    parser.add_argument("--out", type=Path, default=Path(".bench"),
                        help="where the clip is cached and bench_reader.md is written")
    parser.add_argument("--seed", type=int, default=0, help="seed for jump and scrub targets")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    machine = machine_line()

    clip = ensure_clip(args.out, config.frames)
    with open_video(clip, prefetch=False) as reader:
        n, hwaccel = len(reader), reader.hwaccel or "none (software)"
    targets = [rng.randrange(n) for _ in range(config.jumps)]
    sessions = [scrub_indices(rng, n) for _ in range(config.scrub_sessions)]

    kinema_seq, pyav_seq = measure_sequential(clip, n, config.sequential_passes)
    with tempfile.TemporaryDirectory(prefix="kinema-bench-") as cache:
        os.environ["KINEMA_CACHE_DIR"] = cache
        progress("building the proxy")
        t0 = time.perf_counter()
        ensure_proxy(clip)
        proxy_build_s = time.perf_counter() - t0
        jumps = measure_jumps(clip, targets)
    kinema_scrub, textbook_scrub = measure_scrub(clip, sessions)

    ratio = kinema_seq.fps / pyav_seq.fps
    rows = [
        Row("Sequential decode to RGB: frames/s (vs threaded PyAV loop)", f"{kinema_seq.fps:.1f}",
            f"{pyav_seq.fps:.1f}", f"{ratio:.2f}×", **goal("≥ 0.95×", ratio >= 0.95)),
        Row("Sequential decode to RGB: CPU ms a frame, all threads", f"{kinema_seq.cpu_ms:.2f}",
            f"{pyav_seq.cpu_ms:.2f}", f"{pyav_seq.cpu_ms / kinema_seq.cpu_ms:.2f}×"),
        Row("Sequential decode to RGB: minor page faults a frame", f"{kinema_seq.faults:.0f}",
            f"{pyav_seq.faults:.0f}"),
        *latency_rows("Random jump (vs textbook seek)", jumps["kinema"], jumps["textbook"]),
        *latency_rows("Random jump (vs OpenCV `CAP_PROP_POS_FRAMES`)", jumps["kinema"],
                      jumps["opencv"]),
        *latency_rows("Scrub step at 30 Hz (vs textbook seek per step)", kinema_scrub,
                      textbook_scrub, mean_speedup=10, p95_max_ms=50),
        *latency_rows("Proxy jump (vs the same jumps on the source)", jumps["proxy"],
                      jumps["kinema"], p95_max_ms=40),
    ]
    report = "\n".join(["# kinema reader benchmark", "", f"Machine: {machine}", "",
                        table(rows), "",
                        *notes(config, n, args.quick, args.seed, hwaccel, proxy_build_s)])
    print(report)
    (args.out / "bench_reader.md").write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
