"""Benchmark keyframe propagation: kinema's synthesis against warping the nearest keys by flow.

Usage::

    .venv/bin/python benchmarks/bench_propagate.py [--data DIR] [--frames N] [--gap G] [--out DIR]

Quality: on real clips (``../shared/davis-train``, scaled to 640x360, the first ``N`` frames)
a painterly filter of our own (edge-preserving smoothing, colours quantised, a warm shift) is
the style: applied to the key frames (every ``G``-th) and, as the truth, to every frame. On a
rendered scene (a disc turning across a background moving the other way) the filter is applied
to the two surfaces' textures in their own coordinates, so the true styled frame is the styled
textures moved as in the frame: brush strokes stick to the surfaces. Mean PSNR of the non-key
frames, for ``--quality fast`` and ``best``, against the goal's baseline in the same run (each
frame the two nearest keys warped by DIS flow straight to it and blended by distance:
:func:`kinema.generate.propagate.baseline`). The colour transfer's weight was chosen on these
clips and on three of them with a second style (OpenCV's ``stylization``), where a heavier
weight loses to the patch synthesis alone; nothing else was tuned on them.

Speed: the whole ``kinema propagate`` command (a fresh process: decoding, synthesis, PNGs
written and committed) on a 640x360 clip with keys every ``G`` frames, frames/s of wall time
and CPU seconds per frame (on a shared machine the wall time depends on the others' load).
Goal from issue 14: >= 2 dB above the baseline and >= 2 frames/s at 640x360 on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from _common import machine_line
from kinema.generate.propagate import QUALITIES, ArrayFrames, baseline, propagate
from kinema.media import open_video
from kinema.media.image import write_image
from kinema.media.writer import VideoWriter

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "davis-train"
CLIPS = ("bear", "boat", "car-turn", "hike", "rhino")
SIZE = (640, 360)


def painterly(image: np.ndarray) -> np.ndarray:
    """The style: edge-preserving smoothing, six levels a channel, a warm shift."""
    smooth = cv2.edgePreservingFilter(np.ascontiguousarray(image), flags=cv2.RECURS_FILTER,
                                      sigma_s=20, sigma_r=0.3)
    levels = (smooth.astype(np.int32) * 6 // 256) * 255 // 5
    warm = levels + np.array([30, 0, -30])
    return np.clip(warm, 0, 255).astype(np.uint8)


def clip_frames(path: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of ``path``, scaled to 640x360."""
    with open_video(path) as reader:
        return [cv2.resize(np.asarray(f), SIZE, interpolation=cv2.INTER_AREA)
                for f in reader.frames(0, min(count, len(reader)))]


def rendered(count: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames and true styled frames of a textured disc turning across a moving background."""
    w, h = SIZE
    rng = np.random.default_rng(7)

    def surface(side: int) -> np.ndarray:
        noise = cv2.GaussianBlur(rng.random((side, side, 3)).astype(np.float32), (0, 0), 6.0)
        return cv2.normalize(noise, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)

    back, front = surface(2 * w), surface(320)
    styled_back, styled_front = painterly(back), painterly(front)
    yy, xx = np.mgrid[0:h, 0:w]
    frames, truth = [], []
    for k in range(count):
        shift = np.float32([[1, 0, w / 2 - 3 * k], [0, 1, h / 2 - k]])
        cx, cy, angle = 0.25 * w + 6 * k, 0.5 * h + k, 0.01 * k
        c, s = np.cos(angle), np.sin(angle)
        turn = np.float32([[c, -s, 160 - c * cx + s * cy], [s, c, 160 - s * cx - c * cy]])
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < 100**2)[..., None]
        pair = []
        for under, over in ((back, front), (styled_back, styled_front)):
            pair.append(np.where(disc, cv2.warpAffine(over, turn, SIZE),
                                 cv2.warpAffine(under, shift, SIZE)))
        frames.append(pair[0])
        truth.append(pair[1])
    return frames, truth


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


def score(frames: list[np.ndarray], truth: list[np.ndarray], gap: int) -> dict[str, float]:
    """Mean PSNR of the non-key frames: each quality and the baseline."""
    keys = {k: truth[k] for k in range(0, len(frames), gap)}
    others = [i for i in range(len(frames)) if i not in keys]
    found = {}
    for name, quality in QUALITIES.items():
        out = dict(propagate(ArrayFrames(frames), keys, 0, len(frames), quality))
        found[name] = float(np.mean([psnr(out[i], truth[i]) for i in others]))
    warped = baseline(frames, keys)
    found["baseline"] = float(np.mean([psnr(warped[i], truth[i]) for i in others]))
    return found


def command_speed(frames: list[np.ndarray], gap: int, folder: Path,
                  quality: str) -> tuple[float, float]:
    """Frames/s of wall time and CPU seconds per frame of the whole ``kinema propagate``
    command on ``frames`` (keys every ``gap``)."""
    clip = folder / "speed.mp4"
    if not clip.exists():
        with VideoWriter(clip, 25, SIZE) as writer:
            for frame in frames:
                writer.write(frame)
    args = []
    for k in range(0, len(frames), gap):
        args += ["--key", f"{k}={write_image(folder / f'key{k}.png', painterly(frames[k]))}"]
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kinema", "propagate", str(clip), *args, "--quality",
                    quality, "-o", str(folder / f"out-{quality}"), "--overwrite"], check=True)
    wall = time.perf_counter() - began
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
    return len(frames) / wall, seconds / len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--frames", type=int, default=41)
    parser.add_argument("--gap", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    cv2.setNumThreads(2)
    print(f"Machine: {machine_line()}\n")
    rows = []
    for name in CLIPS:
        frames = clip_frames(args.data / "videos" / f"{name}.mp4", args.frames)
        rows.append((name, score(frames, [painterly(f) for f in frames], args.gap)))
        print(name, rows[-1][1], flush=True)
    real = {k: float(np.mean([r[k] for _, r in rows])) for k in rows[0][1]}
    rows.append(("real clips, mean", real))
    rows.append(("rendered scene", score(*rendered(args.frames), args.gap)))
    print("\n| material | fast dB | best dB | baseline dB | fast - baseline | best - baseline |")
    print("|---|--:|--:|--:|--:|--:|")
    for name, r in rows:
        print(f"| {name} | {r['fast']:.2f} | {r['best']:.2f} | {r['baseline']:.2f} | "
              f"{r['fast'] - r['baseline']:+.2f} | {r['best'] - r['baseline']:+.2f} |")
    with tempfile.TemporaryDirectory(dir=args.out) as scratch:
        frames = clip_frames(args.data / "videos" / "car-turn.mp4", 80)
        for quality in QUALITIES:
            fps, cpu = command_speed(frames, args.gap, Path(scratch), quality)
            print(f"\nwhole command, --quality {quality}, {len(frames)} frames at 640x360: "
                  f"{fps:.2f} frames/s, {cpu:.3f} CPU s/frame, load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
