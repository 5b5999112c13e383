"""Batch work on Ray (``--ray``) makes what the same work makes here, byte for byte: a style
layer's spans propagated as Ray tasks (``kinema stylize --ray``, a local cluster of its own),
a generated channel's shots filmed by Ray actors holding the tiny models. A cluster that is
not there is one error line; a library channel (nothing to film) is refused. Ray starts
slowly: two clusters in all, one of them in-process for the module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import tracked_project
from kinema.app.evaluate import cache_folder
from kinema.app.style_layer import SPANS, stylize
from kinema.core.jobs import run
from kinema.media.image import encode_png
from kinema.media.synth import write_clip

pytest.importorskip("ray")

W, H, N = 64, 48, 12
KEYS = (2, 6, 9)  # seven spans: before, on and between the keys, after


def disc(i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx - (20 + 2 * i)) ** 2 + (yy - 24) ** 2 < 12**2


def kinema(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kinema", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def project_with_keys(base: Path, video: Path) -> tuple[Path, list[str]]:
    """A project of ``video`` with a mask track, and ``--key`` arguments painting three keys."""
    folder = tracked_project(base, video, [disc(i) for i in range(N)], "ball")
    args = []
    for frame in KEYS:
        image = base.with_name(f"{base.name}-key{frame}.png")
        image.write_bytes(encode_png(np.random.default_rng(frame).integers(0, 256, (H, W, 3), np.uint8)))
        args += ["--key", f"{frame}={image}"]
    return folder, args


def test_stylize_on_ray_writes_the_bytes_a_local_run_writes(tmp_path: Path) -> None:
    video = write_clip(tmp_path / "shot.mp4", n=N, size=(W, H), fps=24)
    caches = []
    for name, ray in (("here", []), ("there", ["--ray"])):
        folder, keys = project_with_keys(tmp_path / name, video)
        done = kinema("stylize", str(folder), "--track", "ball", *keys, *ray)
        assert done.returncode == 0 and f"s1: {N} frame(s) propagated, 0 kept" in done.stdout, done.stderr
        caches.append(cache_folder(folder, "s1"))
    local, remote = caches
    frames = sorted(p.name for p in local.glob("*.png"))
    assert len(frames) == N and frames == sorted(p.name for p in remote.glob("*.png"))
    for name in frames:
        assert (remote / name).read_bytes() == (local / name).read_bytes(), name
    # every span recorded (in the order they finished), so a rerun keeps them all
    spans = json.loads((remote / SPANS).read_text())
    assert spans == json.loads((local / SPANS).read_text()) and len(spans) == 7
    assert run(stylize(folder)).updates[0].styled == 0


def test_a_cluster_that_is_not_there_is_one_error_line(tmp_path: Path) -> None:
    video = write_clip(tmp_path / "shot.mp4", n=N, size=(W, H), fps=24)
    folder, keys = project_with_keys(tmp_path / "shot", video)
    start = time.monotonic()
    done = kinema("stylize", str(folder), "--track", "ball", *keys, "--ray",
                  env={"KINEMA_RAY": "127.0.0.1:9"})
    assert done.returncode == 1 and "cannot connect to the Ray cluster at 127.0.0.1:9" in done.stderr
    assert done.stderr.count("error:") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "ray start --head" in done.stderr and time.monotonic() - start < 60


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A two-CPU local Ray cluster for this module. Its workers (and this process) cache into a
    temp folder and find no bundled weights: channels upscale with Lanczos, in no time."""
    import ray

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KINEMA_CACHE_DIR", str(tmp_path_factory.mktemp("ray-cache")))
        patch.setenv("KINEMA_MODELS", str(tmp_path_factory.mktemp("no-models")))
        patch.delenv("KINEMA_RAY", raising=False)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield ray
        ray.shutdown()


def test_a_channel_filmed_on_ray_makes_the_segments_made_here(tmp_path: Path, tiny_wan: Path,
                                                              tiny_musicgen: Path, cluster) -> None:
    import torch

    from kinema.app.tv_jobs import ChannelSpec, generated_segments
    from kinema.broadcast.live import ChannelFormat

    channel = ChannelFormat(width=160, height=96, fps=12)
    made, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)  # as in a Ray worker: MusicGen's sampling follows the float bits
    try:
        for where in ("here", "ray"):
            spec = ChannelSpec(theme="a lighthouse in a storm", state=tmp_path / where,
                               t2v=str(tiny_wan), music=str(tiny_musicgen), shots=1, device="cpu",
                               ray=where == "ray")
            segments = generated_segments(spec, channel)
            made[where] = next(segments)  # a shot of the first round, scored into the second's
            segments.close()
    finally:
        torch.set_num_threads(threads)
    here, there = made["here"], made["ray"]
    assert there.path.name == "r0000-s00.mp4" and (here.title, here.duration) == (there.title, there.duration)
    for name in ("r0000-s00.mp4", "r0000-s00/smooth.mp4", "r0001-s00/smooth.mp4"):
        assert (there.path.parent / name).read_bytes() == (here.path.parent / name).read_bytes(), name


def test_a_library_channel_has_nothing_to_film_on_ray(tmp_path: Path) -> None:
    from kinema.app.tv_jobs import ChannelSpec, run_channel
    from kinema.core.errors import InvalidArgumentError

    (tmp_path / "library").mkdir()
    spec = ChannelSpec(theme="dogs", state=tmp_path / "state", library=tmp_path / "library", ray=True)
    with pytest.raises(InvalidArgumentError, match="a --library channel has none"):
        run_channel(spec, hls=tmp_path / "hls")
    assert not (tmp_path / "state").exists()  # refused before anything was made


def test_restyled_keys_on_ray_are_the_keys_made_here(tmp_path: Path, tiny_sdxl: Path,
                                                     cluster) -> None:
    import torch
    from typer.testing import CliRunner

    from conftest import disc_shot
    from kinema.cli.main import app

    video, masks = disc_shot(tmp_path, 6, (96, 72))
    args = ["restyle", str(video), "--mask", str(masks), "--frames", "0,2,3,5", "--prompt",
            "a red dog", "--seed", "4", "--strength", "1.0", "--steps", "3", "--model",
            str(tiny_sdxl), "--device", "cpu"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a Ray worker: float sums in the same order
    try:
        here = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "here")])
    finally:
        torch.set_num_threads(threads)
    assert here.exit_code == 0, here.output
    on_ray = CliRunner().invoke(app, [*args, "--ray", "-o", str(tmp_path / "ray")])
    assert on_ray.exit_code == 0, on_ray.output
    names = ["00000.png", "00002.png", "00003.png", "00005.png"]
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == names
    for name in names:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "here" / name).read_bytes()
    record = json.loads((tmp_path / "ray.provenance.json").read_text())
    assert record["operations"][0]["frames"] == [0, 2, 3, 5]
    r = CliRunner().invoke(app, [*args, "--ray", "--remote", "http://127.0.0.1:1", "-o",
                                 str(tmp_path / "no")])
    assert r.exit_code == 2 and "--ray and --remote" in r.output
