"""Benchmark kinema's SAM 2 tracker: memory against video length, and time against raw
transformers calls.

Usage::

    .venv/bin/python benchmarks/bench_sam2.py [--frames 50,100,200,400] [--size 64x48] [--out DIR]

The model is the tiny random-weight SAM 2 (``kinema.models.tiny_sam2``, 64x64 input), built in a
temporary folder; frames are drawn on demand (a disc moving over a gradient), two objects are
clicked on frame 0 and tracked to the end. Torch runs on ``--threads`` CPU threads (default 1:
tiny models are fastest that way, and timings stay steady on a busy machine).

1. Memory: for each video length, in a fresh process, kinema's tracker against transformers'
   own streaming loop (``Sam2VideoInferenceSession``, a frame at a time, nothing pruned). Reported:
   the tensor bytes the session holds at the end, the growth of the process's resident memory
   during tracking (sampled every frame) and the tracemalloc peak during tracking (Python and
   NumPy allocations). kinema's should not grow with the length (goal: flat).
2. Overhead: the same frames and clicks through ``Sam2VideoTracker.add_prompt`` + ``propagate``
   against a loop of direct transformers calls doing the same work (our resize and normalise,
   ``Sam2VideoModel`` forward per frame, masks upsampled to the frame size); also one click on an
   already embedded frame through ``Sam2ImageSegmenter.segment`` against a direct ``Sam2Model``
   call. Each side runs several times, alternating; the fastest run counts (goal: at most 10%).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from _common import machine_line

GOAL_OVERHEAD = 0.10
CLICKS = {1: (0.2, 0.5), 2: (0.7, 0.5)}  # object id -> click, as fractions of the frame size


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def disc_frame(i: int, w: int, h: int) -> np.ndarray:
    """A yellow disc moving right over a gradient."""
    yy, xx = np.mgrid[0:h, 0:w]
    frame = np.empty((h, w, 3), np.uint8)
    frame[..., 0] = 30 + (xx * 60 // w)
    frame[..., 1] = 60 + (yy * 40 // h)
    frame[..., 2] = 90
    cx, cy, r = (0.15 + 0.6 * ((i % 50) / 50)) * w, 0.5 * h, 0.15 * h
    frame[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = (240, 200, 40)
    return frame


class Frames:
    """A FrameSource drawing each frame on demand."""

    def __init__(self, n: int, w: int, h: int) -> None:
        self.n, self.w, self.h = n, w, h

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> np.ndarray:
        return disc_frame(index, self.w, self.h)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --- the two sides --------------------------------------------------------------------------


def new_tracker(model_dir: Path, frames: Frames):
    """A tracker over ``frames`` with the model loaded (kept out of the timings)."""
    from kinema.vision.sam2 import Sam2VideoTracker

    return Sam2VideoTracker(frames, model_dir, device="cpu")


def run_kinema(tracker, frames: Frames, on_frame=None):
    """Click both objects on frame 0, track to the end; returns the tracker."""
    from kinema.vision.base import Prompt

    for obj_id, (fx, fy) in CLICKS.items():
        tracker.add_prompt(Prompt(0, obj_id, points=((fx * frames.w, fy * frames.h),), labels=(1,)))
    for i, _masks in tracker.propagate(0):
        if on_frame is not None:
            on_frame(i)
    return tracker


def run_raw(model, model_dir: Path, frames: Frames, on_frame=None):
    """The same with transformers alone: its streaming session, a forward per frame."""
    import torch
    from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession

    from kinema.vision.sam2 import read_preprocessing, to_pixels, upsample_masks

    pre = read_preprocessing(model_dir)
    cpu = torch.device("cpu")
    session = Sam2VideoInferenceSession(video_height=frames.h, video_width=frames.w, dtype=torch.float32)
    sx, sy = pre.image_size / frames.w, pre.image_size / frames.h
    with torch.inference_mode():
        for obj_id, (fx, fy) in CLICKS.items():
            idx = session.obj_id_to_idx(obj_id)
            session.add_point_inputs(idx, 0, {
                "point_coords": torch.tensor([[[[fx * frames.w * sx, fy * frames.h * sy]]]]),
                "point_labels": torch.tensor([[[1]]], dtype=torch.int32)})
        session.obj_with_new_inputs = list(CLICKS)
        for i in range(len(frames)):
            frame = frames[i]
            pixels = to_pixels(frame, pre, cpu, torch.float32)
            out = model(inference_session=session, frame=pixels, frame_idx=i)
            upsample_masks(out.pred_masks[:, 0], frame.shape[0], frame.shape[1])
            if on_frame is not None:
                on_frame(i)
    return session


def session_bytes(session) -> int:
    from kinema.vision.sam2 import _tensor_bytes

    held = [session.output_dict_per_obj, session.cache._vision_features, session.processed_frames,
            session.point_inputs_per_obj, session.mask_inputs_per_obj]
    return _tensor_bytes(held)


# --- 1. memory, one length and one side per process ------------------------------------------


def child(model_dir: Path, n: int, side: str, w: int, h: int, threads: int) -> dict[str, float]:
    import torch
    from transformers import Sam2VideoModel

    torch.set_num_threads(threads)
    from kinema.vision.sam2 import _quiet_transformers

    with _quiet_transformers():
        model = Sam2VideoModel.from_pretrained(model_dir).eval()
    # warm up (first-call allocations) on a short video, then measure the long one
    frames, warm = Frames(n, w, h), Frames(5, w, h)
    if side == "raw":
        run_raw(model, model_dir, warm)
    else:
        run_kinema(new_tracker(model_dir, warm), warm)
        tracker = new_tracker(model_dir, frames)
    gc.collect()
    start_rss, peak_rss = rss_bytes(), [0]

    def sample(_i: int) -> None:
        peak_rss[0] = max(peak_rss[0], rss_bytes())

    tracemalloc.start()
    t0 = time.perf_counter()
    if side == "raw":
        held = session_bytes(run_raw(model, model_dir, frames, sample))
    else:
        held = run_kinema(tracker, frames, sample).memory_footprint()["tensor_bytes"]
    seconds = time.perf_counter() - t0
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"held": held, "rss_growth": max(0, peak_rss[0] - start_rss), "traced_peak": traced_peak,
            "seconds": seconds, "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def measure_memory(model_dir: Path, lengths: list[int], w: int, h: int, threads: int) -> dict:
    results = {}
    for n in lengths:
        for side in ("kinema", "raw"):
            progress(f"memory: {n} frames, {side}")
            cmd = [sys.executable, __file__, "--child", str(n), "--side", side, "--model", str(model_dir),
                   "--size", f"{w}x{h}", "--threads", str(threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                 env={**os.environ, "HF_HUB_OFFLINE": "1"})
            results[(n, side)] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


# --- 2. overhead ---------------------------------------------------------------------------------


def measure_overhead(model_dir: Path, n: int, w: int, h: int, runs: int) -> dict[str, list[float]]:
    import torch
    from transformers import Sam2Model, Sam2VideoModel

    from kinema.vision.base import Prompt
    from kinema.vision.sam2 import Sam2ImageSegmenter, _quiet_transformers, read_preprocessing, upsample_masks

    with _quiet_transformers():
        video_model = Sam2VideoModel.from_pretrained(model_dir).eval()
        image_model = Sam2Model.from_pretrained(model_dir).eval()
    frames = Frames(n, w, h)
    times: dict[str, list[float]] = {"kinema": [], "raw": [], "click_kinema": [], "click_raw": []}
    warm = Frames(5, w, h)
    run_kinema(new_tracker(model_dir, warm), warm)  # warm up both
    run_raw(video_model, model_dir, warm)
    for run in range(runs):
        progress(f"overhead run {run + 1}/{runs}")
        tracker = new_tracker(model_dir, frames)
        t0 = time.perf_counter()
        run_kinema(tracker, frames)
        times["kinema"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        run_raw(video_model, model_dir, frames)
        times["raw"].append(time.perf_counter() - t0)

    # one more click on a frame whose embedding is cached
    segmenter = Sam2ImageSegmenter(model_dir, device="cpu")
    frame = frames[0]
    prompt = Prompt(0, points=((0.2 * w, 0.5 * h), (0.7 * w, 0.3 * h)), labels=(1, 0))
    segmenter.segment(frame, prompt)
    pre = read_preprocessing(model_dir)
    embeddings = segmenter.embed(frame, 0)
    sx, sy = pre.image_size / w, pre.image_size / h
    points = torch.tensor([[[[x * sx, y * sy] for x, y in prompt.points]]])
    labels = torch.tensor([[list(prompt.labels)]], dtype=torch.int32)
    clicks = 200
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(clicks):
            segmenter.segment(frame, prompt)
        times["click_kinema"].append((time.perf_counter() - t0) / clicks)
        t0 = time.perf_counter()
        for _ in range(clicks):
            with torch.inference_mode():
                out = image_model(image_embeddings=embeddings, input_points=points, input_labels=labels,
                                  multimask_output=True)
                upsample_masks(out.pred_masks[0, 0], h, w)
        times["click_raw"].append((time.perf_counter() - t0) / clicks)
    return times


# --- report --------------------------------------------------------------------------------------


def mib(b: float) -> str:
    return f"{b / 2**20:.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark kinema's SAM 2 tracker: memory and overhead.")
    parser.add_argument("--frames", default="50,100,200,400", help="video lengths for the memory table")
    parser.add_argument("--size", default="64x48", help="frame size, WxH")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--overhead-frames", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each side")
    parser.add_argument("--out", type=Path, default=Path(".bench"), help="where bench_sam2.md is written")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    if args.child:
        print(json.dumps(child(args.model, args.child, args.side, w, h, args.threads)))
        return 0

    import torch

    from kinema.models.tiny_sam2 import build_tiny_sam2

    torch.set_num_threads(args.threads)
    machine = machine_line()
    lengths = [int(v) for v in args.frames.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kinema-bench-sam2-") as tmp:
        model_dir = build_tiny_sam2(Path(tmp) / "tiny")
        memory = measure_memory(model_dir, lengths, w, h, args.threads)
        times = measure_overhead(model_dir, args.overhead_frames, w, h, args.runs)

    first = memory[(lengths[0], "kinema")]
    lines = [
        "# kinema SAM 2 benchmark", "", f"Machine: {machine}", "",
        f"Tiny random-weight SAM 2 (64x64 input), {w}x{h} frames drawn on demand, 2 objects clicked on "
        f"frame 0 and tracked to the end, torch {torch.__version__} on {args.threads} CPU thread(s).", "",
        "## Memory against video length", "",
        "| Frames | kinema: session tensors MiB | kinema: RSS growth MiB | kinema: tracemalloc peak MiB "
        "| transformers loop: session tensors MiB | transformers loop: RSS growth MiB "
        "| kinema tensors vs first length |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in lengths:
        ours, raw = memory[(n, "kinema")], memory[(n, "raw")]
        lines.append(f"| {n} | {mib(ours['held'])} | {mib(ours['rss_growth'])} | {mib(ours['traced_peak'])} "
                     f"| {mib(raw['held'])} | {mib(raw['rss_growth'])} "
                     f"| {ours['held'] / first['held']:.2f}× |")
    flat = all(memory[(n, "kinema")]["held"] == first["held"] for n in lengths)
    lines += ["", f"kinema's session holds the same bytes at every length: {'yes' if flat else 'NO'} "
                  "(goal: flat).", ""]

    best = {k: min(v) for k, v in times.items()}
    n = args.overhead_frames
    track_ratio = best["kinema"] / best["raw"]
    click_ratio = best["click_kinema"] / best["click_raw"]
    verdict = "met" if track_ratio - 1 <= GOAL_OVERHEAD else "NOT met"
    lines += [
        "## Overhead over raw transformers calls", "",
        "| Measure | kinema | transformers | ratio | goal |", "|---|---|---|---|---|",
        f"| track {n} frames, 2 objects (clicks + propagate), ms/frame | {1000 * best['kinema'] / n:.2f} "
        f"| {1000 * best['raw'] / n:.2f} | {track_ratio:.3f}× | ≤ {1 + GOAL_OVERHEAD:.2f}× ({verdict}) |",
        f"| one more click on an embedded frame, ms | {1000 * best['click_kinema']:.2f} "
        f"| {1000 * best['click_raw']:.2f} | {click_ratio:.3f}× | |",
        "", f"Best of {args.runs} alternating runs (tracking: kinema "
        f"{', '.join(f'{t:.2f}' for t in times['kinema'])} s; transformers "
        f"{', '.join(f'{t:.2f}' for t in times['raw'])} s).",
    ]
    report = "\n".join(lines)
    print(report)
    (args.out / "bench_sam2.md").write_text(report + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
