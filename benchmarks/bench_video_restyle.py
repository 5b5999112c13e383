"""Benchmark the video restyle engines (``kinema restyle --engine animatediff|wan-vace``):
peak memory against the shot's length, and the engine's overhead over the raw diffusers call.

Usage::

    .venv/bin/python benchmarks/bench_video_restyle.py [--out DIR] [--size WxH] [--reps N]
        [--only memory|overhead] [--engines animatediff,wan-vace]

Memory: a synthetic clip (``kinema.media.synth.write_clip``, 256x192 by default, so that the
frames weigh more than the tiny weights) with a label map of a disc moving back and forth
(period 60 frames, so the crop around the object and the working size are the same at every
length), of 120 and of 480 frames. ``restyle_video`` runs on each, with tiny random-weight
models (``kinema.models.tiny_video``; AnimateDiff with a canny ControlNet, windows of 16 sharing
4; Wan 2.1 VACE, windows of 33 sharing 9), into a PNG folder, each run in its own process.
Measured: the process's peak resident set (``ru_maxrss`` from ``wait4``), its resident set
right after the models are loaded (psutil, in the child), and the growth above that. Goal from
the issue: peak(480) <= 1.25 x peak(120), because frames stream window by window.

Overhead: one window through the engine's own path (``AnimateDiffEngine.window``: its VAE
encode of the frames, each frame's noise from the seed, the shared frames' latents blended
with the window before's at every step, the tail copied out, the frames converted back;
``VaceEngine.window``: the video and masks built from the frames and mattes, the frames
converted back) against the same loaded pipeline (``engine.pipe``) called plainly on the same
window (same frames, control images, steps, strength and size; the raw call gets the frames as
PIL pictures and encodes and noises them itself), interleaved, median of ``--reps``. At the
card's working size (the tiny card's 32x32 area, where the tiny models do almost nothing and
any fixed cost shows) and at ``--work`` (128x96 by default: the models do more, nearer their
share of a real run). Wall and CPU seconds, with one torch thread (``--threads``: on a loaded
shared machine two spinning threads make single calls swing several-fold), and the engine's CPU
time outside its own pipeline call (``engine.pipe`` wrapped). Goal: the engine's time <= 1.05 x
raw.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from _common import machine_line
from bench_track_memory import peak_rss

ROOT = Path(__file__).resolve().parent.parent
LENGTHS = (120, 480)
ENGINES = ("animatediff", "wan-vace")
PERIOD = 60


def radius(size: tuple[int, int]) -> int:
    return max(6, min(size) // 6)


def disc(i: int, size: tuple[int, int]) -> np.ndarray:
    """The object on frame ``i``: a disc moving back and forth (period 60 frames)."""
    w, h = size
    r = radius(size)
    cx = w / 2 + (w / 4) * np.sin(2 * np.pi * i / PERIOD)
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx - cx) ** 2 + (yy - h / 2) ** 2 < r**2


def make_shot(folder: Path, frames: int, size: tuple[int, int]) -> tuple[Path, Path]:
    """The clip and its label map (cached in ``folder``)."""
    from kinema.app.mask_outputs import NpzLabels
    from kinema.media.synth import write_clip

    stem = f"vrestyle_{size[0]}x{size[1]}_{frames}"
    video, masks = folder / f"{stem}.mp4", folder / f"{stem}_masks.npz"
    if not video.exists():
        write_clip(video, n=frames, size=size, fps=24)
    if not masks.exists():
        writer = NpzLabels(masks, frames, size, overwrite=False)
        for i in range(frames):
            writer.write(disc(i, size).astype(np.uint8))
        writer.close()
    return video, masks


def tiny_models(folder: Path) -> tuple[Path, Path]:
    """The tiny AnimateDiff set and the tiny Wan VACE folder (cached in ``folder``)."""
    from kinema.models.tiny_video import build_tiny_animatediff, build_tiny_wan_vace

    ad, vace = folder / "vrestyle_tiny_animatediff", folder / "vrestyle_tiny_wan_vace"
    if not (ad / "controlnet-canny-sd15").exists():
        build_tiny_animatediff(ad)
    if not (vace / "model_index.json").exists():
        build_tiny_wan_vace(vace)
    return ad, vace


def restyle_args(engine: str, ad: Path, vace: Path) -> dict:
    from kinema.generate.control import parse_controls

    common = {"prompt": "a red ball", "seed": 3, "strength": 0.6, "steps": 4, "device": "cpu"}
    if engine == "animatediff":
        return {"engine": "animatediff", "model": ad / "sd15-base",
                "motion_model": ad / "animatediff-v1-5-3", "controls": parse_controls("canny=0.8"),
                "controlnets": {"canny": ad / "controlnet-canny-sd15"}, **common}
    return {"engine": "wan-vace", "model": vace, **common}


# -- memory ------------------------------------------------------------------------------------


def memory_child(engine: str, video: Path, masks: Path, ad: Path, vace: Path, out: Path,
                 report: Path) -> None:
    """One restyle of the whole shot; writes the resident set once the models are loaded."""
    import psutil

    from kinema.app import video_restyle_jobs as jobs
    from kinema.core.jobs import Progress

    loaded: dict[str, float] = {}
    load = jobs._VideoModels.load

    def measured_load(self, *args, **kwargs):  # the engine, and the memory right after it
        made = load(self, *args, **kwargs)
        loaded["rss_mib"] = psutil.Process().memory_info().rss / 2**20
        loaded["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        loaded["at"] = time.perf_counter()
        return made

    jobs._VideoModels.load = measured_load
    start = time.perf_counter()
    steps = jobs.restyle_video(video, out, mask=masks, **restyle_args(engine, ad, vace))
    written = 0
    try:
        while True:
            event = next(steps)
            if isinstance(event, Progress) and event.message is None:
                written = event.done
    except StopIteration as done:
        result = done.value
    end = time.perf_counter()
    report.write_text(json.dumps({
        **loaded, "written": written, "frames": result.frames, "windows": result.windows,
        "end_rss_mib": psutil.Process().memory_info().rss / 2**20,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_s": loaded["at"] - start, "restyle_s": end - loaded["at"]}))


def memory(args: argparse.Namespace, ad: Path, vace: Path) -> list[str]:
    import shutil

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    rows = []
    for engine in args.engines:
        found = {}
        for frames in LENGTHS:
            make_shot(args.out, frames, args.size)
            out = args.out / f"vrestyle_{engine}_{frames}"
            shutil.rmtree(out, ignore_errors=True)
            for leftover in (out.with_name(out.name + ".provenance.json"),
                             out.with_name(f".{out.name}.kinema-output.json")):
                leftover.unlink(missing_ok=True)
            print(f"... memory: {engine}, {frames} frames", file=sys.stderr, flush=True)
            rss, seconds = peak_rss([sys.executable, __file__, "--out", str(args.out), "--size",
                                     f"{args.size[0]}x{args.size[1]}", "--child", engine,
                                     "--frames", str(frames), "--to", str(out)], env)
            got = json.loads(out.with_suffix(".json").read_text())
            assert got["written"] == frames == got["frames"], got
            assert len(list(out.glob("*.png"))) == frames
            found[frames] = (rss, got, seconds)
            shutil.rmtree(out, ignore_errors=True)
        (p1, g1, _), (p4, g4, _) = found[LENGTHS[0]], found[LENGTHS[1]]
        grow1, grow4 = p1 - g1["rss_mib"], p4 - g4["rss_mib"]
        ratio = p4 / p1
        for frames, (p, g, s) in found.items():
            rows.append(f"| {engine} | {frames} | {g['windows']} | {g['rss_mib']:.0f} | {p:.0f} | "
                        f"{p - g['rss_mib']:.0f} | {g['restyle_s']:.1f} | {s:.1f} |")
        rows.append(f"| **{engine}: 480 / 120** | | | {g4['rss_mib'] / g1['rss_mib']:.2f} | "
                    f"**{ratio:.3f}** ({'<=' if ratio <= 1.25 else '>'} 1.25: "
                    f"{'met' if ratio <= 1.25 else 'NOT met'}) | "
                    f"{grow4 / grow1 if grow1 > 0 else float('nan'):.2f} "
                    f"({grow4 - grow1:+.0f} MiB) | | |")
    return [f"Clip {args.size[0]}x{args.size[1]}, a disc moving back and forth; PNG folder out; "
            "steps 4, strength 0.6 (2 denoising steps), cpu, one process per run", "",
            "| engine | frames | windows | RSS after load MiB | peak RSS MiB | growth above load MiB | "
            "restyle s | process s |",
            "|---|--:|--:|--:|--:|--:|--:|--:|", *rows]


# -- overhead ----------------------------------------------------------------------------------


def shot_window(video: Path, masks: Path, start: int, count: int, margin: int = 8,
                feather: float = 4.0) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Frames ``start`` .. ``start+count`` (whole: both calls scale them to the working size),
    their mattes and canny images."""
    from kinema.app.restyle_jobs import LabelFile, restyle_mattes
    from kinema.generate.control import CANNY_THRESHOLDS
    from kinema.media import open_video

    labels = LabelFile(masks)
    with open_video(video, prefetch=False) as reader:
        size = reader.size
        frames = [np.asarray(f)[..., :3] for f in reader.frames(start, start + count)]
    mattes = [restyle_mattes(labels.read(i), size, margin, feather)[1]
              for i in range(start, start + count)]
    labels.close()
    import cv2

    cannies = [np.repeat(cv2.Canny(f, *CANNY_THRESHOLDS)[..., None], 3, axis=2) for f in frames]
    return frames, mattes, cannies


def timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds (the whole process's) of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def overhead_animatediff(ad: Path, video: Path, masks: Path, sizes: Sequence[tuple[int, int]],
                         reps: int) -> list[tuple]:
    from kinema.generate.animatediff import AnimateDiffEngine

    engine = AnimateDiffEngine(ad / "sd15-base", ad / "animatediff-v1-5-3",
                               controlnets={"canny": ad / "controlnet-canny-sd15"}, device="cpu")
    shot = shot_window(video, masks, 0, 2 * 16 - 4)
    return [(f"{size[0]}x{size[1]}", *animatediff_window(engine, shot, size, reps)) for size in sizes]


def animatediff_window(engine, shot, size: tuple[int, int], reps: int) -> tuple[float, ...]:
    """Median seconds of the engine's second window (16 frames, 4 shared) and of the raw call."""
    import torch
    from PIL import Image

    from kinema.generate.sdxl import sized
    from kinema.generate.video_windows import VideoRequest, Window

    frames, mattes, cannies = shot
    n, keep = 16, 4
    request = VideoRequest(prompt="a red ball", strength=0.6, steps=4, guidance=5.0, seed=3,
                           size=size, control_weights={"canny": 0.8})
    engine.reset()
    engine.window(frames[:n], mattes[:n], {"canny": cannies[:n]}, request, Window(0, n), keep)
    carry = engine._carry  # the window before's shared latents: the blend runs
    second = Window(n - keep, 2 * n - keep, keep)
    part = slice(n - keep, 2 * n - keep)
    win_frames, win_mattes, win_canny = frames[part], mattes[part], cannies[part]

    def ours() -> None:
        engine._carry = carry
        engine.window(win_frames, win_mattes, {"canny": win_canny}, request, second, keep,
                      on_step=lambda done, of: None)

    pictures = [Image.fromarray(f) for f in win_frames]
    controls = [Image.fromarray(sized(c, size)) for c in win_canny]

    def raw() -> None:
        with torch.inference_mode():
            engine.pipe(video=pictures, conditioning_frames=controls, prompt=request.prompt,
                        strength=request.strength, num_inference_steps=request.steps,
                        guidance_scale=request.guidance, controlnet_conditioning_scale=0.8,
                        width=size[0], height=size[1], output_type="np", decode_chunk_size=8,
                        generator=torch.Generator("cpu").manual_seed(3))

    return (*interleaved(ours, raw, reps), outside(engine, ours, reps))


def overhead_vace(vace: Path, video: Path, masks: Path, sizes: Sequence[tuple[int, int]],
                  reps: int) -> list[tuple]:
    from kinema.generate.wan import VaceEngine

    engine = VaceEngine(vace, device="cpu")
    shot = shot_window(video, masks, 0, 2 * 33 - 9)
    return [(f"{size[0]}x{size[1]}", *vace_window(engine, shot, size, reps)) for size in sizes]


def vace_window(engine, shot, size: tuple[int, int], reps: int) -> tuple[float, ...]:
    """Median seconds of the engine's second window (33 frames, 9 kept) and of the raw call."""
    import torch
    from PIL import Image

    from kinema.generate.sdxl import sized
    from kinema.generate.video_windows import VideoRequest, Window

    frames, mattes, _ = shot
    n, keep = 33, 9
    request = VideoRequest(prompt="a red ball", strength=0.6, steps=4, guidance=5.0, seed=3, size=size)
    engine.reset()
    engine.window(frames[:n], mattes[:n], {}, request, Window(0, n), keep)
    before = engine._before  # the window before's last frames: kept frames given back
    second = Window(n - keep, 2 * n - keep, keep)
    part = slice(n - keep, 2 * n - keep)
    win_frames, win_mattes = frames[part], mattes[part]

    def ours() -> None:
        engine._before = before
        engine.window(win_frames, win_mattes, {}, request, second, keep, on_step=lambda done, of: None)

    held = before[1]
    width, height = size
    pictures, holes = [], []
    for k in range(n):  # the same video and masks, made once, outside the timing
        if k < len(held):
            pictures.append(Image.fromarray(sized(held[k], size)))
            holes.append(Image.fromarray(np.zeros((height, width), np.uint8)))
        else:
            inside = win_mattes[k] > 0
            pictures.append(Image.fromarray(sized(win_frames[k], size)))
            holes.append(Image.fromarray(sized(np.where(inside, 255, 0).astype(np.uint8), size)[..., 0]))

    def raw() -> None:
        with torch.inference_mode():
            engine.pipe(video=pictures, mask=holes, prompt=request.prompt, height=height,
                        width=width, num_frames=n, num_inference_steps=request.steps,
                        guidance_scale=request.guidance, output_type="np",
                        generator=torch.Generator("cpu").manual_seed(3))

    return (*interleaved(ours, raw, reps), outside(engine, ours, reps))


class _TimedPipe:
    """A pipeline that adds up the CPU seconds its calls take (everything else passes through)."""

    def __init__(self, pipe) -> None:
        self._pipe, self.seconds = pipe, 0.0

    def __call__(self, *args, **kwargs):
        start = time.process_time()
        try:
            return self._pipe(*args, **kwargs)
        finally:
            self.seconds += time.process_time() - start

    def __getattr__(self, name: str):
        return getattr(self._pipe, name)


def outside(engine, ours, reps: int) -> float:
    """Median CPU seconds of ``ours`` spent outside the pipeline's own call (the engine's
    work before and after it: for AnimateDiff its VAE encode and noise too)."""
    pipe, found = engine.pipe, []
    try:
        for _ in range(reps):
            engine.pipe = timed_pipe = _TimedPipe(pipe)
            _, cpu = timed(ours)
            found.append(cpu - timed_pipe.seconds)
    finally:
        engine.pipe = pipe
    return statistics.median(found)


def interleaved(ours, raw, reps: int) -> tuple[float, float, float, float]:
    """Median wall seconds of ``ours`` and ``raw`` and median CPU seconds of each, alternated
    (one warm-up each, the order flipped every repetition)."""
    ours(), raw()
    a, b = [], []
    for k in range(reps):
        if k % 2:
            b.append(timed(raw))
            a.append(timed(ours))
        else:
            a.append(timed(ours))
            b.append(timed(raw))
    return (statistics.median(t[0] for t in a), statistics.median(t[0] for t in b),
            statistics.median(t[1] for t in a), statistics.median(t[1] for t in b))


def overhead(args: argparse.Namespace, ad: Path, vace: Path) -> list[str]:
    import torch

    torch.set_num_threads(args.threads)
    video, masks = make_shot(args.out, LENGTHS[0], args.size)
    rows = []
    for engine in args.engines:
        print(f"... overhead: {engine}", file=sys.stderr, flush=True)
        if engine == "animatediff":
            found = overhead_animatediff(ad, video, masks, [(32, 32), args.work], args.reps)
        else:
            found = overhead_vace(vace, video, masks, [(32, 32), args.work], args.reps)
        for size, ours, raw, ours_cpu, raw_cpu, out_cpu in found:
            ratio = ours / raw
            print(f"    {engine} {size}: {ours:.3f} s against {raw:.3f} s", file=sys.stderr, flush=True)
            rows.append(f"| {engine} | {size} | {ours * 1000:.0f} | {raw * 1000:.0f} | "
                        f"**{ratio:.3f}** ({'met' if ratio <= 1.05 else 'NOT met'}) | "
                        f"{ours_cpu * 1000:.0f} | {raw_cpu * 1000:.0f} | {ours_cpu / raw_cpu:.3f} | "
                        f"{out_cpu * 1000:.1f} |")
    return [f"One window (AnimateDiff 16 frames + canny, following a window: the blend runs; "
            f"VACE 33 frames, 9 kept from the window before), 4 steps at strength 0.6, "
            f"median of {args.reps}, interleaved, torch threads {args.threads}", "",
            "| engine | working size | engine.window ms | raw pipe ms (baseline) | ratio (goal <= 1.05) | "
            "engine CPU ms | raw CPU ms | CPU ratio | engine CPU ms outside the pipe call |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|", *rows]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Video restyle engines: memory against length, "
                                                 "overhead against raw diffusers.")
    parser.add_argument("--out", type=Path, default=ROOT / ".bench", help="models, clips and the report")
    parser.add_argument("--size", default="256x192", help="the clip's size, WxH")
    parser.add_argument("--work", default="128x96",
                        help="the larger working size of the overhead timing, WxH (multiples of 16)")
    parser.add_argument("--reps", type=int, default=5, help="repetitions of each overhead timing")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for the overhead timing (1: on a loaded shared machine "
                             "two spinning threads make the timings swing several-fold)")
    parser.add_argument("--only", choices=("memory", "overhead"))
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.size = tuple(int(x) for x in args.size.lower().split("x"))
    args.work = tuple(int(x) for x in args.work.lower().split("x"))
    args.engines = [e for e in args.engines.split(",") if e]
    args.out.mkdir(parents=True, exist_ok=True)
    ad, vace = tiny_models(args.out)
    if args.child:
        video, masks = make_shot(args.out, args.frames, args.size)
        memory_child(args.child, video, masks, ad, vace, args.to, args.to.with_suffix(".json"))
        return 0
    import diffusers
    import torch

    lines = [f"Machine: {machine_line()} | torch {torch.__version__} (threads {torch.get_num_threads()}) "
             f"| diffusers {diffusers.__version__}", ""]
    if args.only != "overhead":
        lines += memory(args, ad, vace) + [""]
    if args.only != "memory":
        lines += overhead(args, ad, vace)
    text = "\n".join(lines)
    (args.out / "bench_video_restyle.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
