"""Benchmark tracking on real footage: the whole ``kinema track`` CLI over ``davis-train``.

Usage::

    .venv/bin/python benchmarks/bench_davis.py [--data DIR] [--backends guided,classic]
                                               [--only tune|held-out] [--limit N]

For each of the 20 clips of ``../shared/davis-train`` (854x480, a hand-made mask on every
frame) the first frame's ground-truth mask is written as a PNG and given as the prompt:
``kinema track CLIP --mask GT0.png@0 -o out.npz --backend B``, one fresh process per clip,
so frames/s is the clip's frame count over the wall time of the whole command (start-up,
model loading, decoding and writing the label map included). J (region similarity, as in
DAVIS) is the mean IoU over frames 1..N-1 against the ground truth (an empty prediction on
an empty truth counts 1); the overall figure is the mean of the per-clip J.

Backends in the same run on the same clips: ``guided`` (the classic tracker with the bundled
models' evidence, :mod:`kinema.vision.guided`) and ``classic`` (the baseline). The guided
settings were tuned on the clips with an even index in name order ("tune"); the odd ones
("held-out") were only measured. Goal from issue 12: mean J >= 0.80 at >= 15 frames/s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from _common import machine_line

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "davis-train"


def truth(data: Path, name: str) -> np.ndarray:
    """The ground-truth masks of clip ``name``, ``bool (N, H, W)``."""
    z = np.load(data / "masks" / f"{name}.npz")
    w = int(z["shape"][2])
    return np.unpackbits(z["masks"], axis=-1, count=w).astype(bool)


def region_j(labels: np.ndarray, masks: np.ndarray) -> list[float]:
    """IoU per frame 1..N-1 of ``labels > 0`` against ``masks`` (empty on empty: 1)."""
    scores = []
    for pred, gt in zip(labels[1:] > 0, masks[1:], strict=True):
        union = np.count_nonzero(pred | gt)
        scores.append(np.count_nonzero(pred & gt) / union if union else 1.0)
    return scores


def run_clip(video: Path, masks: np.ndarray, backend: str, work: Path,
             limit: int | None) -> tuple[float, float, int]:
    """``(J, frames/s, frames)`` of one ``kinema track`` run from the first frame's mask."""
    prompt = work / f"{video.stem}_0.png"
    cv2.imwrite(str(prompt), masks[0].astype(np.uint8) * 255)
    out = work / f"{video.stem}_{backend}.npz"
    kinema = Path(sys.executable).parent / "kinema"
    command = [str(kinema), "track", str(video), "--mask", f"{prompt}@0", "-o", str(out),
               "--backend", backend, "-y"]
    n = len(masks)
    if limit:
        command += ["--end", str(limit)]
        n = min(n, limit)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "NO_COLOR": "1"})
    seconds = time.perf_counter() - start
    with np.load(out) as z:
        labels = z["masks"][:n]
    return float(np.mean(region_j(labels, masks[:n]))), n / seconds, n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="kinema track on davis-train: J and frames/s.")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--backends", default="guided,classic")
    parser.add_argument("--only", choices=("tune", "held-out"))
    parser.add_argument("--limit", type=int, help="track only the first N frames of each clip")
    args = parser.parse_args(argv)
    if not (args.data / "videos").is_dir():
        print(f"no clips in {args.data}: skipped")
        return 0
    backends = args.backends.split(",")
    names = sorted(p.stem for p in (args.data / "videos").glob("*.mp4"))
    halves = {"tune": names[0::2], "held-out": names[1::2]}
    if args.only:
        halves = {args.only: halves[args.only]}
    print(f"# kinema track on davis-train (whole CLI, first frame's true mask)\n\n{machine_line()}\n")
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for half, chosen in halves.items():
            print(f"## {half} ({len(chosen)} clips)\n")
            print("| clip | " + " | ".join(f"J {b} | frames/s {b}" for b in backends) + " |")
            print("|---|" + "--:|--:|" * len(backends))
            results: dict[str, list[tuple[float, float, int]]] = {b: [] for b in backends}
            for name in chosen:
                masks = truth(args.data, name)
                cells = []
                for backend in backends:
                    j, fps, n = run_clip(args.data / "videos" / f"{name}.mp4", masks, backend,
                                         Path(tmp), args.limit)
                    results[backend].append((j, fps, n))
                    cells.append(f"{j:.3f} | {fps:.1f}")
                print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
            row = [half]
            for backend in backends:
                js = [r[0] for r in results[backend]]
                frames = sum(r[2] for r in results[backend])
                seconds = sum(r[2] / r[1] for r in results[backend])
                row.append((float(np.mean(js)), frames / seconds))
            summary.append(row)
            print()
    print("| half | " + " | ".join(f"mean J {b} | frames/s {b}" for b in backends) + " |")
    print("|---|" + "--:|--:|" * len(backends))
    for half, *cells in summary:
        print(f"| {half} | " + " | ".join(f"{j:.3f} | {fps:.1f}" for j, fps in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
