"""Frame interpolation at half rate: kinema flow (the default) against FFmpeg's minterpolate.

For each clip of ``../shared/davis-train`` (854x480 real footage, 24 fps) its first 48 frames
at half rate (every other frame, 12 fps, lossless x264 so every method reads the same pixels)
are interpolated back to 24 fps and the dropped frames compared with the originals (mean
PSNR over RGB of the in-betweens that every method made; minterpolate ends a few frames early).
Methods, in the same run:

- ``kinema interpolate HALF --factor 2 -o DIR`` (default backend ``flow``, the whole command
  as a subprocess, timed: decoding, the cut guard's scan, flow, PNG writing; wall-clock and CPU
  seconds, the latter steadier on a shared machine);
- ``ffmpeg -i HALF -vf minterpolate=fps=24:mi_mode=mci:mc_mode=aobmc:me_mode=bidir DIR/%04d.png``
  (motion-compensated, bidirectional motion estimation, adaptive OBMC; timed the same way);
- plain DIS warp averaged: OpenCV's DIS medium flows both ways, each frame warped half-way
  along its own flow at the output pixel (``-F01(x)/2``, ``-F10(x)/2``) and averaged (the
  baseline of issue 14);
- RIFE v3.9 (bundled, torch on the CPU) in-process, unless ``--no-rife``;
- the plain cross-fade.

Run: ``.venv/bin/python benchmarks/bench_interpolate.py [--clips a,b] [--no-rife]``.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "davis-train" / "videos"
CLIPS = ("bear", "boat", "car-turn", "dance-jump", "hike", "bmx-bumps")
FRAMES = 48
MINTERPOLATE = "minterpolate=fps=24:mi_mode=mci:mc_mode=aobmc:me_mode=bidir"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-10))


def decode(path: Path, n: int | None = None) -> list[np.ndarray]:
    from kinema.media import open_video

    with open_video(path, prefetch=False) as reader:
        return [reader[i] for i in range(min(n or len(reader), len(reader)))]


def folder(path: Path) -> list[np.ndarray]:
    from kinema.media.image import read_image

    return [read_image(p) for p in sorted(path.glob("*.png"))]


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system, all threads) of ``cmd`` run to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def plain_dis(a: np.ndarray, b: np.ndarray, dis) -> np.ndarray:
    import cv2

    ga, gb = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (a, b))
    f01, f10 = dis.calc(ga, gb, None), dis.calc(gb, ga, None)
    h, w = a.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))

    def warp(image: np.ndarray, f: np.ndarray) -> np.ndarray:
        return cv2.remap(image, xs - f[..., 0] / 2, ys - f[..., 1] / 2, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE).astype(np.float32)

    return np.clip(np.rint((warp(a, f01) + warp(b, f10)) / 2), 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", default=",".join(CLIPS))
    parser.add_argument("--no-rife", action="store_true")
    args = parser.parse_args()
    import cv2

    from kinema.generate.rife import blend

    rife = None
    if not args.no_rife:
        try:
            from kinema.models import backends

            rife = backends.create("interpolate", "rife", device="cpu")
        except Exception as exc:
            print(f"RIFE skipped: {exc}")
    print(f"Machine: {machine_line()}\n")
    kinema = str(ROOT / ".venv" / "bin" / "kinema")
    rows, totals = [], {"kinema": 0.0, "minterpolate": 0.0}
    cpu = {"kinema": 0.0, "minterpolate": 0.0}
    scores: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.clips.split(","):
            src = DATA / f"{name}.mp4"
            half = work / f"{name}.half.mkv"
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-vf",
                            f"select=lt(n\\,{FRAMES})*not(mod(n\\,2)),setpts=N/12/TB",
                            "-fps_mode", "passthrough", "-r", "12", "-c:v", "libx264", "-qp", "0",
                            "-preset", "ultrafast", str(half)], check=True)
            truth = decode(src, FRAMES)
            source = decode(half)
            out_k, out_m = work / f"{name}_kinema", work / f"{name}_mi"
            out_m.mkdir()
            t_m, c_m = timed(["ffmpeg", "-v", "error", "-y", "-i", str(half), "-vf", MINTERPOLATE,
                              str(out_m / "%04d.png")])
            t_k, c_k = timed([kinema, "interpolate", str(half), "--factor", "2", "-o", str(out_k)])
            totals["kinema"] += t_k
            totals["minterpolate"] += t_m
            cpu["kinema"] += c_k
            cpu["minterpolate"] += c_m
            made = {"kinema flow": folder(out_k), "minterpolate": folder(out_m)}
            pairs = min(len(source) - 1, len(made["minterpolate"]) // 2)
            dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
            made["plain DIS average"] = [None] * (2 * pairs)
            made["cross-fade"] = [None] * (2 * pairs)
            if rife is not None:
                made["RIFE v3.9"] = [None] * (2 * pairs)
            for i in range(pairs):
                a, b = source[i], source[i + 1]
                made["plain DIS average"][2 * i + 1] = plain_dis(a, b, dis)
                made["cross-fade"][2 * i + 1] = blend(a, b, 0.5)
                if rife is not None:
                    made["RIFE v3.9"][2 * i + 1] = rife.interpolate(a, b, 0.5)
            row = {}
            for method, frames in made.items():
                row[method] = float(np.mean([psnr(frames[2 * i + 1], truth[2 * i + 1])
                                             for i in range(pairs)]))
                scores.setdefault(method, []).append(row[method])
            rows.append((name, pairs, row, t_k, t_m))
            print(f"{name}: " + ", ".join(f"{m} {v:.2f}" for m, v in row.items())
                  + f" | kinema {t_k:.1f} s ({c_k:.1f} s CPU), minterpolate {t_m:.1f} s"
                  f" ({c_m:.1f} s CPU)", flush=True)
    methods = list(scores)
    print("\n| clip | in-betweens | " + " | ".join(f"{m} dB" for m in methods)
          + " | kinema s | minterpolate s |")
    print("|---|---|" + "---|" * len(methods) + "---|---|")
    for name, pairs, row, t_k, t_m in rows:
        print(f"| {name} | {pairs} | " + " | ".join(f"{row[m]:.2f}" for m in methods)
              + f" | {t_k:.1f} | {t_m:.1f} |")
    means = {m: float(np.mean(v)) for m, v in scores.items()}
    print("| **mean** | | " + " | ".join(f"**{means[m]:.2f}**" for m in methods)
          + f" | {totals['kinema']:.1f} | {totals['minterpolate']:.1f} |")
    base = means["minterpolate"]
    print("\nagainst minterpolate: " + ", ".join(f"{m} {means[m] - base:+.2f} dB" for m in methods))
    print(f"whole command: kinema {totals['kinema']:.1f} s, minterpolate {totals['minterpolate']:.1f} s, "
          f"minterpolate / kinema = {totals['minterpolate'] / totals['kinema']:.2f}x; CPU time (user + "
          f"system): kinema {cpu['kinema']:.1f} s, minterpolate {cpu['minterpolate']:.1f} s, "
          f"minterpolate / kinema = {cpu['minterpolate'] / cpu['kinema']:.2f}x")


if __name__ == "__main__":
    main()
