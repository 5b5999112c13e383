"""Benchmark the memory of ``kinema restyle``: peak memory against the number of keys.

Usage::

    .venv/bin/python benchmarks/bench_restyle.py [--clip PATH] [--out DIR]

On a shared 1280x720 clip (``../shared/media/dog.mp4`` by default) with a label map of an
ellipse over the middle of every frame, ``restyle`` runs with tiny random-weight SDXL and
canny ControlNet (``kinema models tiny``; the model card's 64x64 working size and 2 steps),
``--control canny=0.6``, on 2, 8 and 32 key frames spread over the clip. Each count runs in its
own process, which loads the models once; measured are its peak resident set (``ru_maxrss``
from ``wait4``) and the peak of the Python heap (``tracemalloc``, numpy arrays included: the
frames, mattes and keys kinema holds) from the first key on. Goal from the issue: flat, that
is the 32-key figures near the 2-key ones, because the model loads once and keys stream.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from _common import machine_line
from bench_track_memory import peak_rss

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT.parent / "shared" / "media" / "dog.mp4"
COUNTS = (2, 8, 32)


def make_masks(clip: Path, folder: Path) -> Path:
    """A label map (cached in ``folder``) with an ellipse over the middle of every frame."""
    import cv2

    from kinema.app.mask_outputs import NpzLabels
    from kinema.media import open_video

    path = folder / f"restyle_masks_{clip.stem}.npz"
    if path.exists():
        return path
    with open_video(clip, prefetch=False) as reader:
        (width, height), frames = reader.size, len(reader)
    labels = np.zeros((height, width), np.uint8)
    cv2.ellipse(labels, (width // 2, height // 2), (width // 8, height // 3), 0, 0, 360, 1, -1)
    writer = NpzLabels(path, frames, (width, height), overwrite=False)
    for _ in range(frames):
        writer.write(labels)
    return writer.close()


def tiny_models(folder: Path) -> tuple[Path, Path]:
    """Tiny SDXL and canny ControlNet folders (cached in ``folder``)."""
    from kinema.models.tiny_sdxl import build_tiny_controlnet, build_tiny_sdxl

    sdxl, net = folder / "restyle_tiny_sdxl", folder / "restyle_tiny_controlnet"
    if not sdxl.exists():
        build_tiny_sdxl(sdxl)
    if not net.exists():
        build_tiny_controlnet(net)
    return sdxl, net


def child(clip: Path, masks: Path, sdxl: Path, net: Path, keys: int, out: Path, report: Path) -> None:
    """One restyle of ``keys`` keys; writes the Python heap's peak from the first key on."""
    from kinema.app.restyle_jobs import restyle
    from kinema.core.jobs import Progress
    from kinema.generate.control import parse_controls
    from kinema.media import open_video

    with open_video(clip, prefetch=False) as reader:
        frames = np.linspace(0, len(reader) - 1, keys).round().astype(int).tolist()
    steps = restyle(clip, out, prompt="red hot lava, flames", frames=frames, mask=masks,
                    controls=parse_controls("canny=0.6"), model=sdxl, controlnets={"canny": net},
                    device="cpu")
    event: Progress | None = None
    try:
        while True:
            event = next(steps)
            if event.total and not tracemalloc.is_tracing():  # the models are loaded
                tracemalloc.start()
    except StopIteration:
        pass
    _now, peak = tracemalloc.get_traced_memory()
    report.write_text(json.dumps({"traced_peak_mib": peak / 2**20, "keys": len(list(out.iterdir()))}))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Peak memory of kinema restyle against the number of keys.")
    parser.add_argument("--clip", type=Path, default=CLIP, help="a clip (default ../shared/media/dog.mp4)")
    parser.add_argument("--out", type=Path, default=ROOT / ".bench", help="models, masks and the report")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.clip.is_file():
        raise SystemExit(f"{args.clip} is not present (see ../shared/media/ATTRIBUTION.md)")
    masks, (sdxl, net) = make_masks(args.clip, args.out), tiny_models(args.out)
    if args.child:
        child(args.clip, masks, sdxl, net, args.child, args.to, args.to.with_suffix(".json"))
        return 0
    machine = machine_line()
    rows, base = [], None
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for keys in COUNTS:
        out = args.out / f"restyle_keys_{keys}"
        shutil.rmtree(out, ignore_errors=True)
        for leftover in (out.with_name(out.name + ".provenance.json"),
                         out.with_name(f".{out.name}.kinema-output.json")):
            leftover.unlink(missing_ok=True)
        print(f"... {keys} keys", file=sys.stderr, flush=True)
        rss, seconds = peak_rss([sys.executable, __file__, "--clip", str(args.clip), "--out",
                                 str(args.out), "--child", str(keys), "--to", str(out)], env)
        result = json.loads(out.with_suffix(".json").read_text())
        assert result["keys"] == keys, result
        base = base or (rss, result["traced_peak_mib"], seconds)
        rows.append(f"| {keys} | {rss:.0f} | {rss / base[0]:.2f} | {result['traced_peak_mib']:.1f} | "
                    f"{result['traced_peak_mib'] / base[1]:.2f} | {seconds:.1f} |")
    text = "\n".join([
        f"Machine: {machine}", "",
        f"Clip {args.clip.name}; tiny SDXL + canny ControlNet, 64x64 working size, 2 steps", "",
        "| keys | peak RSS MiB | RSS / 2 keys | Python heap peak MiB (from the first key) | "
        "heap / 2 keys | s (whole process) |",
        "|--:|--:|--:|--:|--:|--:|", *rows])
    (args.out / "bench_restyle.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
