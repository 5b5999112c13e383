"""Pose: milliseconds per frame at 854x480 for BlazePose through a clip, three ways in one run.

On people clips of ``../shared/davis-train`` (854x480 real footage, decoded once beforehand so
only pose is timed): the landmark model alone on a fixed region (the floor: one 256x256 pass),
detection + landmarks on every frame (the baseline: what a per-frame estimator does), and
:class:`kinema.vision.pose.PoseTracker` (the next region from the last landmarks, detection
only on the first frame, after a loss and every 10 frames, One Euro smoothing). Methods are
interleaved per clip, three rounds, best time per method counts. Also the "are there people?"
query (the detector alone). Run: ``.venv/bin/python benchmarks/bench_pose.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "davis-train"
CLIPS = ("lucia", "tennis", "breakdance-flare", "hike", "stroller", "dance-jump")
FRAMES = 40


def main() -> None:
    from kinema.media import open_video
    from kinema.vision.pose import PoseEstimator, PoseTracker

    est = PoseEstimator()
    clips = {}
    for name in CLIPS:
        with open_video(DATA / "videos" / f"{name}.mp4", prefetch=False) as reader:
            clips[name] = list(reader.frames(0, min(FRAMES, len(reader))))
    roi = {name: est.people(frames[0])[0].roi for name, frames in clips.items()}

    def landmarks_only(name: str) -> None:
        for frame in clips[name]:
            est.landmarks(frame, roi[name])

    def every_frame(name: str) -> None:
        for frame in clips[name]:
            est.people(frame)

    def tracked(name: str) -> None:
        tracker = PoseTracker(est, fps=24.0)
        for frame in clips[name]:
            tracker.update(frame)

    def query(name: str) -> None:
        for frame in clips[name]:
            est.has_people(frame)

    methods = {"landmark model alone (fixed region)": landmarks_only,
               "detection + landmarks every frame": every_frame,
               "tracked (kinema PoseTracker)": tracked,
               "has_people (detector alone)": query}
    best = {m: float("inf") for m in methods}
    calls = {}
    for round_ in range(3):
        order = list(methods)[round_:] + list(methods)[:round_]
        for m in order:
            before = dict(est.calls)
            start = time.perf_counter()
            for name in CLIPS:
                methods[m](name)
            best[m] = min(best[m], time.perf_counter() - start)
            calls[m] = {k: est.calls[k] - before[k] for k in before}
    n = sum(len(f) for f in clips.values())
    print(f"# pose at 854x480\n\n{machine_line()}\n")
    print(f"{len(CLIPS)} DAVIS clips x {FRAMES} frames = {n} frames; best of 3 rounds\n")
    print("| method | ms/frame | detector / landmark passes per frame |\n|---|--:|--:|")
    for m in methods:
        c = calls[m]
        print(f"| {m} | {1000 * best[m] / n:.1f} | {c['detect'] / n:.2f} / {c['landmarks'] / n:.2f} |")
    ratio = best["detection + landmarks every frame"] / best["tracked (kinema PoseTracker)"]
    print(f"\ntracked is {ratio:.2f}x the speed of detecting on every frame")


if __name__ == "__main__":
    main()
