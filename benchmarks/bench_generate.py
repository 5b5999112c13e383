"""Benchmark kinema's SDXL call against the raw diffusers call with the same components.

Usage::

    .venv/bin/python benchmarks/bench_generate.py [--size 256] [--steps 4] [--rounds 12]

Builds the tiny random-weight SDXL and ControlNet (``kinema models tiny sdxl|controlnet``),
then times, interleaved round by round so load on the machine hits both alike:

- ``kinema``: ``ImageGenerator.generate(Request(...))``: the request settled against the
  model card, the pipeline for the kind of call taken from the cache (``from_pipe``),
  scheduler checked, seeded generator, arrays in and out;
- ``diffusers`` (baseline): ``StableDiffusionXLPipeline(...)`` / the ControlNet pipeline
  called directly with the same components, prompt, size, steps and seed.

Reports the median seconds per call of each and the ratio (goal from issue 13: kinema's
overhead <= 5 %), for text-to-image and for text-to-image with one ControlNet, and checks that
both give the same pixels.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import machine_line

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()

    import torch
    from diffusers import StableDiffusionXLControlNetPipeline, StableDiffusionXLPipeline

    from kinema.generate.sdxl import Control, ImageGenerator, Request
    from kinema.models.tiny_sdxl import build_tiny_controlnet, build_tiny_sdxl

    work = Path(tempfile.mkdtemp(prefix="bench_generate_"))
    folder, net = build_tiny_sdxl(work / "sdxl"), build_tiny_controlnet(work / "controlnet")
    ours = ImageGenerator(folder, controlnets={"canny": net}, device="cpu", dtype="float32")
    raw = StableDiffusionXLPipeline.from_pretrained(folder)
    raw.set_progress_bar_config(disable=True)
    raw_control = StableDiffusionXLControlNetPipeline.from_pipe(raw, controlnet=ours.controlnets["canny"])
    raw_control.set_progress_bar_config(disable=True)
    size, steps = args.size, args.steps
    edges = np.zeros((size, size, 3), np.uint8)
    edges[size // 4: 3 * size // 4, size // 4] = 255
    from PIL import Image

    def raw_call(pipe, **extra):
        generator = torch.Generator("cpu").manual_seed(7)
        with torch.inference_mode():
            out = pipe("a red dog", num_inference_steps=steps, guidance_scale=5.0, width=size,
                       height=size, generator=generator, output_type="np", **extra).images[0]
        return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)

    def ours_call(*controls: Control) -> np.ndarray:
        return ours.generate(Request("a red dog", seed=7, steps=steps, size=(size, size), controls=controls))

    cases = {
        "text-to-image": (ours_call, lambda: raw_call(raw)),
        "with a ControlNet": (lambda: ours_call(Control("canny", edges, 0.8)),
                              lambda: raw_call(raw_control, image=Image.fromarray(edges),
                                               controlnet_conditioning_scale=0.8)),
    }
    print(machine_line())
    print(f"tiny SDXL, {size}x{size}, {steps} steps, {args.rounds} interleaved rounds, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'call':20} {'kinema s':>9} {'diffusers s':>12} {'ratio':>7} same pixels")
    for name, (kinema_call, diffusers_call) in cases.items():
        same = np.array_equal(kinema_call(), diffusers_call())  # also warms both up
        times: dict[str, list[float]] = {"kinema": [], "diffusers": []}
        for _ in range(args.rounds):
            for label, call in (("kinema", kinema_call), ("diffusers", diffusers_call)):
                start = time.perf_counter()
                call()
                times[label].append(time.perf_counter() - start)
        ours_s, theirs_s = statistics.median(times["kinema"]), statistics.median(times["diffusers"])
        print(f"{name:20} {ours_s:9.3f} {theirs_s:12.3f} {ours_s / theirs_s:7.3f} {same}")


if __name__ == "__main__":
    main()
