"""Benchmark rendering a project against a plain decode-and-encode passthrough of its clip.

Usage::

    .venv/bin/python benchmarks/bench_render.py [--quick] [--out DIR]

The clip is ``../shared/media/juggle.mp4`` (with its sound, if it has any) scaled once to 1920x1080 H.264 and
cached in ``--out`` (default ``.bench/``); ``--quick`` uses its first 60 frames. The project
puts the clip on one layer and, over it, a half-opaque colour solid seen through a feathered
mask track (a disc crossing the frame), so every frame is composited in float, premultiplied,
with a matte. ``kinema.app.render_job.render`` writes H.264 .mp4 in its resumable chunks, joins
them and mixes any sound.

Baseline, in the same run: PyAV decodes the clip (threaded) and libx264 re-encodes each
decoded frame as it is, with kinema's H.264 settings: the least any render of that clip can
cost. Each side runs twice, alternating; the faster run of each counts. The ratio is kinema's
frames/s over the baseline's (goal: at least 0.6).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np

from _common import machine_line
from kinema.app.project_jobs import new_project
from kinema.app.render_job import render
from kinema.document import edits, store
from kinema.document.masktrack import FrameState, MaskTrackStore
from kinema.document.model import LayerMask, MaskTrackRef, SolidItem, VideoLayer
from kinema.media import open_video
from kinema.media.codecs import CODECS
from kinema.media.probe import probe
from kinema.media.writer import VideoWriter

SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "juggle.mp4"
SIZE = (1920, 1080)
GOAL = 0.6


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def ensure_clip(out: Path, frames: int | None) -> Path:
    """juggle.mp4 at 1080p (the first ``frames``), with its sound; made once, then cached."""
    name = f"juggle_1080p_{frames or 'all'}.mp4"
    clip = out / name
    if clip.exists():
        return clip
    if not SOURCE.is_file():
        raise SystemExit(f"error: {SOURCE} is missing; the benchmark renders the shared sample clip")
    progress(f"scaling {SOURCE.name} to 1080p")
    sound = SOURCE if probe(SOURCE).audio else None
    with open_video(SOURCE) as reader, VideoWriter(clip, reader.fps, SIZE, audio_from=sound,
                                                   audio_start=reader.start_time) as writer:
        for frame in reader.frames(0, frames, size=SIZE):
            writer.write(frame)
    return clip


def make_project(clip: Path, folder: Path) -> Path:
    """The clip, and a half-opaque solid through a feathered moving-disc mask over it."""
    project = new_project(folder / "bench", clip)
    with open_video(clip) as reader:
        n = len(reader)
    w, h = SIZE
    yy, xx = np.mgrid[0:h, 0:w]
    masks = [(xx - (200 + 1500 * i / n)) ** 2 + (yy - h / 2) ** 2 < 260**2 for i in range(n)]
    MaskTrackStore(project / "masks" / "t1", n, w, h).write_many(0, masks, FrameState.PROPAGATED)
    with store.ProjectFile(project) as pf:
        h_ = pf.history
        h_.do(edits.add_mask_track(MaskTrackRef(id="t1", name="disc", media_id="m1", frames=n,
                                                width=w, height=h)))
        h_.do(edits.add_layer(VideoLayer(
            id="tint", name="tint", mask=LayerMask(track_id="t1", feather=6.0),
            items=[SolidItem(id="s1", color=(255, 120, 0, 128), duration=n)])))
        pf.save()
    return project


def passthrough(clip: Path, out: Path) -> int:
    """Decode and re-encode every frame with kinema's H.264 settings; returns the frame count."""
    spec = CODECS["h264"]
    options = {k: v for k, v in spec.options.items() if k != "movflags"}
    count = 0
    with av.open(str(clip)) as src, av.open(str(out), "w") as dst:
        stream_in = src.streams.video[0]
        stream_in.thread_type = "AUTO"
        stream = dst.add_stream(spec.encoder, rate=stream_in.average_rate)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], spec.pix_fmt
        stream.options = options
        for frame in src.decode(stream_in):
            frame.pts = None
            dst.mux(stream.encode(frame))
            count += 1
        dst.mux(stream.encode(None))
    return count


def timed_render(project: Path, out: Path) -> float:
    start = time.perf_counter()
    for _ in render(project, out, overwrite=True):
        pass
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark kinema render against a passthrough.")
    parser.add_argument("--quick", action="store_true", help="the first 60 frames only")
    parser.add_argument("--out", type=Path, default=Path(".bench"),
                        help="where the 1080p clip is cached and bench_render.md is written")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = machine_line()
    clip = ensure_clip(args.out, 60 if args.quick else None)
    with tempfile.TemporaryDirectory(prefix="kinema-bench-render-") as tmp:
        work = Path(tmp)
        project = make_project(clip, work)
        renders, passes = [], []
        for run in range(2):
            progress(f"run {run + 1}/2: passthrough")
            t0 = time.perf_counter()
            frames = passthrough(clip, work / "passthrough.mp4")
            passes.append(time.perf_counter() - t0)
            progress(f"run {run + 1}/2: kinema render")
            renders.append(timed_render(project, work / "render.mp4"))
        with open_video(work / "render.mp4") as rendered:
            assert len(rendered) == frames, (len(rendered), frames)
    kinema_fps, base_fps = frames / min(renders), frames / min(passes)
    ratio = kinema_fps / base_fps
    verdict = "met" if ratio >= GOAL else "NOT met"
    report = "\n".join([
        "# kinema render benchmark", "", f"Machine: {machine}", "",
        "| Measure | kinema | baseline | ratio | goal |",
        "|---|---|---|---|---|",
        f"| 1080p render, clip + masked layer, frames/s (vs PyAV decode→libx264 "
        f"passthrough) | {kinema_fps:.1f} | {base_fps:.1f} | {ratio:.2f}× | ≥ {GOAL}× ({verdict}) |",
        "", f"{frames} frames of {SOURCE.name} at {SIZE[0]}x{SIZE[1]}; best of 2 runs each "
        f"(kinema {', '.join(f'{t:.1f}' for t in renders)} s; baseline "
        f"{', '.join(f'{t:.1f}' for t in passes)} s).",
    ])
    print(report)
    (args.out / "bench_render.md").write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
