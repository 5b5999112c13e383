"""Benchmark the memory of ``kinema track``: peak RSS against clip length.

Usage::

    .venv/bin/python benchmarks/bench_track_memory.py [--quick] [--baseline REV] [--out DIR]

Clips are generated at 320x240 (a textured ellipse over a panning background,
:func:`kinema.vision.synthetic.moving_object`, played back and forth), 500 and 2000 frames
long. Each case runs the whole command line, ``kinema track CLIP --point X,Y@F ...``, in its
own process; its peak resident set (``ru_maxrss`` from ``wait4``) is what is measured.
Baseline, in the same run on the same clips: the same commands on the code of ``--baseline``
(default: the last commit before ``track`` streamed its masks), exported with ``git archive``
and put first on ``PYTHONPATH``. Goal from the issue: peak RSS for 2000 frames at most 1.25x
that for 500 frames.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from _common import machine_line
from kinema.media.writer import VideoWriter
from kinema.vision.synthetic import moving_object

ROOT = Path(__file__).resolve().parent.parent
KINEMA = ROOT / ".venv" / "bin" / "kinema"
BASELINE = "05f0c1b"  # the last commit before kinema track streamed its masks
SIZE = (320, 240)
LENGTHS = (500, 2000)
LOOP = 100  # frames of the generated scene, played forwards and backwards
CASES = {
    "-o OUT.npz": ["--point", "{first}@0", "-o", "{out}.npz"],
    "--reverse --smooth 2 -o DIR": ["--point", "{last}@{end}", "--reverse", "--smooth", "2",
                                    "-o", "{out}"],
    "--project P": ["--point", "{first}@0", "--project", "{project}"],
}


def make_clip(folder: Path, n: int) -> tuple[Path, dict[str, str]]:
    """An ``n``-frame lossless clip (cached in ``folder``) and where to click on its object on
    the first and the last frame."""
    scene = moving_object(n=LOOP, size=SIZE, seed=1)
    order = list(range(LOOP)) + list(range(LOOP - 2, 0, -1))

    def click(i: int) -> str:
        ys, xs = np.nonzero(scene.masks[order[i % len(order)]])
        return f"{int(xs.mean())},{int(ys.mean())}"

    path = folder / f"track_memory_{n}.mkv"
    if not path.exists():
        with VideoWriter(path, 25, SIZE, codec="h264", options={"qp": "0", "crf": "0"}) as w:
            for k in range(n):
                w.write(scene.frames[order[k % len(order)]])
    return path, {"first": click(0), "last": click(n - 1), "end": str(n - 1)}


def peak_rss(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Peak RSS (MiB) and wall seconds of ``argv`` run to completion in its own process."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    errors = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({process.returncode}): {errors}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start


def export_source(rev: str, folder: Path) -> Path:
    """``src/`` of commit ``rev`` unpacked under ``folder``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "src"


def run_case(code: Path, clip: Path, marks: dict[str, str], extra: list[str],
             work: Path) -> tuple[float, float]:
    """Peak RSS and seconds of one ``kinema track`` run on the sources in ``code``."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    out = work / f"out{time.monotonic_ns()}"
    project = work / f"p{time.monotonic_ns()}.kinema"
    if "{project}" in extra:  # made by the same code: project schemas differ between versions
        subprocess.run([str(KINEMA), "new", str(project), "--video", str(clip)], env=env,
                       capture_output=True, check=True)
    args = [a.format(out=out, project=project, **marks) for a in extra]
    return peak_rss([str(KINEMA), "track", str(clip), *args], env)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Peak memory of kinema track against clip length.")
    parser.add_argument("--quick", action="store_true", help="only the .npz case")
    parser.add_argument("--baseline", default=BASELINE, help="git revision to compare with")
    parser.add_argument("--out", type=Path, default=ROOT / ".bench", help="clips and the report")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = machine_line()
    clips = {n: make_clip(args.out, n) for n in LENGTHS}
    cases = dict(list(CASES.items())[:1]) if args.quick else CASES
    rows = []
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        work = Path(tmp)
        (work / "old").mkdir()
        codes = {"baseline": export_source(args.baseline, work / "old"), "kinema": ROOT / "src"}
        for case, extra in cases.items():
            figures: dict[tuple[str, int], tuple[float, float]] = {}
            for n in LENGTHS:  # interleaved: old and new code run under the same load
                for name, code in codes.items():
                    print(f"... {case}: {name}, {n} frames", file=sys.stderr, flush=True)
                    figures[name, n] = run_case(code, *clips[n], extra, work)
            for name in codes:
                small, large = figures[name, LENGTHS[0]], figures[name, LENGTHS[1]]
                rows.append(f"| `{case}` | {name} | {small[0]:.0f} | {large[0]:.0f} | "
                            f"{large[0] / small[0]:.2f} | {small[1]:.1f} | {large[1]:.1f} |")
    a, b = LENGTHS
    report = "\n".join([
        f"Machine: {machine}", "",
        f"Clip {SIZE[0]}x{SIZE[1]}; baseline: {args.baseline}", "",
        f"| case | code | MiB, {a} frames | MiB, {b} frames | ratio {b}/{a} (goal <= 1.25) | "
        f"s, {a} | s, {b} |",
        "|---|---|--:|--:|--:|--:|--:|", *rows])
    (args.out / "bench_track_memory.md").write_text(report + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
