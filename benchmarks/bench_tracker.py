"""Benchmark the classical tracker: accuracy (IoU against ground truth) and speed.

Usage::

    .venv/bin/python benchmarks/bench_tracker.py [--quick] [--out DIR]

Clips are generated with known masks (``kinema.vision.synthetic.moving_object``) at 854x480,
the DAVIS-2016 working size: a textured object moving and changing size over a panning
textured background, some with an occluding bar, some with colours close to the
background's. Each starts from the first frame's true mask, as DAVIS semi-supervised
evaluation does.

Baseline, in the same run on the same clips: plain optical-flow warping of the first mask
(the same DIS flow, the mask pulled along it frame after frame, nothing else). Goals from the
issue: mean IoU >= 0.60 at >= 15 frames/s on 854x480 with 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from _common import machine_line
from kinema.vision.base import Prompt
from kinema.vision.classic import ClassicTracker
from kinema.vision.maskops import iou
from kinema.vision.synthetic import Scene, moving_object

SIZE = (854, 480)
CLIPS = {
    "grow + pan": {},
    "shrink": {"scale_change": 0.6, "seed": 1},
    "occluder": {"occluder": True, "seed": 2},
    "similar colours": {"similar_colours": 0.5, "seed": 3},
    "occluder + similar": {"occluder": True, "similar_colours": 0.4, "seed": 4},
}


def flow_warp(scene: Scene) -> tuple[list[float], float]:
    """The baseline: the first mask warped along DIS flow, frame after frame."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    mask = scene.masks[0].astype(np.float32)
    h, w = mask.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    scores = [1.0]
    start = time.perf_counter()
    previous = cv2.cvtColor(scene.frames[0], cv2.COLOR_RGB2GRAY)
    for i in range(1, len(scene)):
        current = cv2.cvtColor(scene.frames[i], cv2.COLOR_RGB2GRAY)
        back = dis.calc(current, previous, None)
        mask = cv2.remap(mask, gx + back[..., 0], gy + back[..., 1], cv2.INTER_LINEAR)
        scores.append(iou(mask > 0.5, scene.masks[i]))
        previous = current
    return scores, (len(scene) - 1) / (time.perf_counter() - start)


def classic(scene: Scene) -> tuple[list[float], float]:
    tracker = ClassicTracker(scene)
    tracker.add_prompt(Prompt(frame=0, mask=scene.masks[0]))
    scores = []
    start = time.perf_counter()
    for i, masks in tracker.propagate(0):
        scores.append(iou(masks[1], scene.masks[i]))
    return scores, (len(scene) - 1) / (time.perf_counter() - start)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the classical tracker.")
    parser.add_argument("--quick", action="store_true", help="30-frame clips instead of 90")
    parser.add_argument("--out", type=Path, default=Path(".bench"), help="where bench_tracker.md goes")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = machine_line()
    n = 30 if args.quick else 90
    rows, ours, theirs, speeds, base_speeds = [], [], [], [], []
    for name, kwargs in CLIPS.items():
        print(f"... {name}", file=sys.stderr, flush=True)
        scene = moving_object(n=n, size=SIZE, **kwargs)
        (k_scores, k_fps), (b_scores, b_fps) = classic(scene), flow_warp(scene)
        k, b = float(np.mean(k_scores[1:])), float(np.mean(b_scores[1:]))
        ours.append(k), theirs.append(b), speeds.append(k_fps), base_speeds.append(b_fps)
        rows.append(f"| {name} | {k:.3f} | {b:.3f} | {min(k_scores):.3f} | {k_fps:.1f} | {b_fps:.1f} |")
    mean_k, mean_b, fps = float(np.mean(ours)), float(np.mean(theirs)), float(np.median(speeds))
    report = "\n".join([
        "# kinema classical tracker benchmark", "", f"Machine: {machine}", "",
        "| clip (854x480, first-frame mask) | IoU kinema | IoU flow warp | worst frame (kinema) "
        "| frames/s kinema | frames/s flow warp |",
        "|---|--:|--:|--:|--:|--:|", *rows,
        f"| **mean** | **{mean_k:.3f}** | {mean_b:.3f} | | **{fps:.1f}** (median) | "
        f"{float(np.median(base_speeds)):.1f} |", "",
        f"Goals: mean IoU >= 0.60 ({'met' if mean_k >= 0.6 else 'NOT met'}), >= 15 frames/s "
        f"({'met' if fps >= 15 else 'NOT met'}). {n} frames a clip.",
    ])
    print(report)
    (args.out / "bench_tracker.md").write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
