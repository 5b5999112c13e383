"""Benchmark one click on real footage: the bundled-model segmenter against classical GrabCut.

Usage::

    .venv/bin/python benchmarks/bench_oneclick.py [--data DIR] [--set KEY=VALUE ...] [--only tune|held-out]

On ``../shared/davis-train`` (20 real clips with a hand-made mask on every frame), the first
frame of each clip gets one click at the deepest interior point of its ground-truth object
(the maximum of the distance transform), and the mask it gives is scored by IoU against the
ground truth. Seconds per click include start-up: loading the models (and importing their
runtimes) is timed, and reported both on its own and spread over the clicks; the first click
of a fresh process is start-up plus one click.

Baseline, in the same run on the same clicks: the classical backend (GrabCut growing a box
around the click, ``kinema.vision.classic``). The settings were tuned on the clips with an
even index in name order ("tune"); the odd ones ("held-out") were not looked at while
tuning. Goal from issue 12: mean IoU >= 0.75 at <= 3 s per click.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from _common import machine_line
from kinema.media import open_video
from kinema.vision.base import Prompt
from kinema.vision.maskops import iou

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "davis-train"


def first_frames(data: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, frame 0, its ground-truth mask)`` of every clip in ``data``, in name order."""
    out = []
    for video in sorted((data / "videos").glob("*.mp4")):
        with open_video(video) as reader:
            frame = reader[0]
        z = np.load(data / "masks" / f"{video.stem}.npz")
        w = z["shape"][2]
        truth = np.unpackbits(z["masks"][0], axis=-1, count=int(w)).astype(bool)
        out.append((video.stem, frame, truth))
    return out


def deepest_point(mask: np.ndarray) -> tuple[float, float]:
    """The interior point farthest from the mask's edge (distance transform maximum)."""
    distance = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(distance.argmax()), distance.shape)
    return float(x), float(y)


def run(make, clips) -> tuple[dict[str, float], float, float, dict[str, str]]:
    """IoU per clip, start-up seconds, mean seconds per click (after start-up), kinds."""
    start = time.perf_counter()
    segmenter = make()
    startup = time.perf_counter() - start
    scores, kinds, times = {}, {}, []
    for name, frame, truth in clips:
        x, y = deepest_point(truth)
        t = time.perf_counter()
        mask = segmenter.segment(frame, Prompt(frame=0, points=((x, y),), labels=(1,)))[0].mask
        times.append(time.perf_counter() - t)
        scores[name] = iou(mask, truth)
        kinds[name] = getattr(segmenter, "last_kind", "")
    return scores, startup, float(np.mean(times)), kinds


def whole_command(data: Path, clip: tuple[str, np.ndarray, np.ndarray], backend: str) -> float:
    """Seconds of one ``kinema segment`` process (Python start-up, imports, models, decode,
    one click at the deepest point, the PNG written) on ``clip``'s first frame."""
    name, _, truth = clip
    x, y = deepest_point(truth)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kinema", "segment", str(data / "videos" / f"{name}.mp4"),
                        "--frame", "0", "--point", f"{x:g},{y:g}", "-o", str(Path(folder) / "m.png"),
                        "--backend", backend], check=True, capture_output=True)
        return time.perf_counter() - start


def parse_settings(pairs: list[str]):
    from kinema.vision.oneclick import Settings

    fields = {f.name: f.type for f in dataclasses.fields(Settings)}
    values = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        if key not in fields:
            sys.exit(f"unknown setting {key}; known: {', '.join(fields)}")
        kind = {"float": float, "int": int, "str": str}[str(fields[key])]
        values[key] = kind(value)
    return Settings(**values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a oneclick.Settings field, for tuning")
    parser.add_argument("--only", choices=["tune", "held-out"])
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args(argv)

    from kinema.vision.classic import GrabCutSegmenter
    from kinema.vision.oneclick import OneClickSegmenter

    settings = parse_settings(args.set)
    clips = first_frames(args.data)
    halves = {"tune": clips[0::2], "held-out": clips[1::2]}
    if args.only:
        halves = {args.only: halves[args.only]}
    print(f"# one click on davis-train first frames\n\n{machine_line()}\n")
    print(f"settings: {settings}\n")
    rows = []
    for half, chosen in halves.items():
        ours, startup, per_click, kinds = run(lambda: OneClickSegmenter(settings=settings), chosen)
        if args.no_baseline:
            base, b_startup, b_per_click = {n: float("nan") for n in ours}, 0.0, float("nan")
        else:
            base, b_startup, b_per_click, _ = run(GrabCutSegmenter, chosen)
        print(f"## {half} ({len(chosen)} clips)\n")
        print("| clip | one-click IoU | path | GrabCut IoU |\n|---|---|---|---|")
        for name in ours:
            print(f"| {name} | {ours[name]:.3f} | {kinds[name]} | {base[name]:.3f} |")
        n = len(chosen)
        row = (half, float(np.mean(list(ours.values()))), startup, per_click,
               (startup + n * per_click) / n, float(np.mean(list(base.values()))), b_startup,
               b_per_click, (b_startup + n * b_per_click) / n)
        rows.append(row)
        print()
    print("| half | one-click mean IoU | start-up s | s/click | s/click incl. start-up | "
          "GrabCut mean IoU | GrabCut s/click incl. start-up |\n|---|---|---|---|---|---|---|")
    for half, m, su, pc, amort, bm, _, _, bamort in rows:
        print(f"| {half} | {m:.3f} | {su:.2f} | {pc:.2f} | {amort:.2f} | {bm:.3f} | {bamort:.2f} |")
    if not args.no_baseline:
        print("\nA whole `kinema segment` process, one click (start-up included), seconds:\n")
        print("| clip | auto | classic |\n|---|---|---|")
        for clip in clips[:4]:
            print(f"| {clip[0]} | {whole_command(args.data, clip, 'auto'):.2f} | "
                  f"{whole_command(args.data, clip, 'classic'):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
