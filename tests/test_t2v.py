"""kinema t2v: a clip from words with Wan 2.1 T2V. The tiny random-weight Wan (its frames are
noise: plumbing only) makes clips of the asked frame count at the card's rate, with the rate and
duration in the movie's metadata, the recipe beside it, the same frames from the same seed; bad
input is one error line and leaves nothing behind."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")

from typer.testing import CliRunner

from kinema.cli.main import app
from kinema.document.recipes import T2VRecipe


def kinema_t2v(*args: object):
    return CliRunner().invoke(app, ["t2v", *map(str, args)])


def recipe_of(out: Path) -> T2VRecipe:
    record = json.loads(out.with_name(out.name + ".provenance.json").read_text())
    return T2VRecipe.model_validate(record["operations"][0])


def folder_frames(folder: Path) -> list[np.ndarray]:
    from kinema.media.image import read_image

    return [read_image(p) for p in sorted(folder.glob("*.png"))]


def test_clip_has_the_asked_frames_rate_metadata_and_recipe(tiny_wan: Path, tmp_path: Path):
    import av

    from kinema.app.provenance import read_provenance
    from kinema.media.probe import probe

    out = tmp_path / "clip.mp4"
    run = kinema_t2v("a red fox running through snow", "--model", tiny_wan, "--frames", 13,
                     "--size", "48x32", "--seed", 3, "--device", "cpu", "-o", out)
    assert run.exit_code == 0, run.output
    assert "13 frames, 48x32 at 16 fps, 0.8125 s" in run.stdout
    info = probe(out).video
    assert info is not None and (info.frames, Fraction(info.fps), info.width, info.height) == (13, 16, 48, 32)
    assert info.codec == "h264"
    with av.open(str(out)) as container:
        tags = dict(container.metadata)
        stream = container.streams.video[0]
        assert stream.average_rate == 16
        assert abs(float(container.duration / av.time_base) - 13 / 16) < 0.01
    assert tags["title"] == "a red fox running through snow"
    assert "13 frames at 16 fps, 0.8125 s" in tags["comment"]
    assert "clip.mp4.provenance.json" in tags["comment"] and "seed 3" in tags["comment"]
    recipe = recipe_of(out)
    assert (recipe.operation, recipe.prompt, recipe.seed, recipe.frames, recipe.size, recipe.rate) == (
        "t2v", "a red fox running through snow", 3, 13, (48, 32), Fraction(16))
    # unset settings come from the tiny model's card (kinema.json)
    assert (recipe.steps, recipe.guidance, recipe.scheduler) == (2, 5.0, "unipc")
    assert recipe.model.model_id == str(tiny_wan.resolve()) and recipe.model.weights_sha256
    assert (recipe.device, recipe.dtype) == ("cpu", "float32")
    assert read_provenance(out)["models"] == [str(tiny_wan.resolve())]


def test_the_card_fills_frames_and_size_and_a_mov_is_prores(tiny_wan: Path, tmp_path: Path):
    import av

    from kinema.media.probe import probe

    out = tmp_path / "clip.mov"
    run = kinema_t2v("a cat", "--model", tiny_wan, "--device", "cpu", "-o", out)
    assert run.exit_code == 0, run.output
    info = probe(out).video
    assert info is not None and (info.frames, Fraction(info.fps), info.width, info.height) == (9, 16, 32, 32)
    assert info.codec == "prores"
    with av.open(str(out)) as container:
        assert "9 frames at 16 fps, 0.5625 s" in container.metadata["comment"]


def test_same_seed_same_frames_and_progress_per_step(tiny_wan: Path, tmp_path: Path):
    from kinema.app.t2v_jobs import ClipSettings, make_clip
    from kinema.core.jobs import run

    def make(name: str, seed: int) -> list[np.ndarray]:
        events = []
        clip = run(make_clip(ClipSettings("a cat on a wall", frames=5, size=(32, 32), seed=seed,
                                          steps=3),
                             tmp_path / name, model=tiny_wan, device="cpu"),
                   on_progress=events.append)
        assert (clip.frames, clip.fps, clip.duration) == (5, 16, Fraction(5, 16))
        assert [(e.done, e.total) for e in events] == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
        return folder_frames(tmp_path / name)

    a, b, c = make("a", 7), make("b", 7), make("c", 8)
    assert len(a) == 5 and a[0].shape == (32, 32, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    assert recipe_of(tmp_path / "a").frames == 5
    assert (tmp_path / "a.provenance.json").is_file()


def test_project_gets_the_clip_with_its_recipe(tiny_wan: Path, tmp_path: Path):
    from kinema.app.project_jobs import new_project
    from kinema.document import store
    from kinema.media.synth import write_clip

    folder = new_project(tmp_path / "shot", write_clip(tmp_path / "bg.mp4", n=4, size=(64, 48)))
    out = tmp_path / "fox.mp4"
    run = kinema_t2v("a fox", "--model", tiny_wan, "--frames", 5, "--device", "cpu", "-o", out,
                     "--project", folder)
    assert run.exit_code == 0, run.output
    project = store.load(folder)
    media = next(m for m in project.media.values() if Path(m.path) == out.resolve())
    assert (media.frames, media.rate) == (5, 16)
    stored = project.recipes[f"t2v-{media.id}"]
    assert isinstance(stored, T2VRecipe) and stored.prompt == "a fox" and media.recipe_id == stored.id
    assert f"t2v-{media.id} in" in run.stdout


def test_bad_input_is_one_error_line_and_leaves_nothing(tiny_wan: Path, tiny_wan_vace: Path,
                                                        tiny_sdxl: Path, tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    taken = work / "taken.mp4"
    taken.write_bytes(b"mine")
    out = work / "new.mp4"
    cases = [
        (["a cat", "-o", out, "--model", tiny_wan, "--frames", 80], "--frames 80: Wan makes 4k+1 frames"),
        (["a cat", "-o", out, "--model", tiny_wan, "--size", "830x480"], "not a multiple of 16"),
        (["a cat", "-o", out, "--model", tiny_wan, "--size", "64by48"], "--size '64by48' is not WxH"),
        (["a cat", "-o", out, "--model", "wan9-t2v"], "no model called 'wan9-t2v'"),
        (["a cat", "-o", out, "--model", "sdxl-base"], "sdxl-base is a text-to-image model"),
        (["a cat", "-o", out, "--model", tiny_wan_vace], "is a WanVACEPipeline folder"),
        (["a cat", "-o", out, "--model", tiny_sdxl], "is a StableDiffusionXLPipeline folder"),
        (["a cat", "-o", out, "--model", work / "nothing"], "is not a model folder"),
        (["  ", "-o", out, "--model", tiny_wan], "the prompt is empty"),
        (["a cat", "-o", taken, "--model", tiny_wan], "already exists"),
        (["a cat", "-o", work / "clip.gif", "--model", tiny_wan], "cannot write a clip to a .gif"),
        (["a cat", "-o", work / "no" / "clip.mp4", "--model", tiny_wan], "output folder does not exist"),
        (["a cat", "-o", out, "--model", tiny_wan, "--steps", 0], "--steps must be at least 1"),
        (["a cat", "-o", out, "--model", tiny_wan, "--backend", "sora"], "unknown backend 'sora' for t2v"),
        (["a cat", "-o", out, "--model", tiny_wan, "--project", work / "none.kinema"], "none.kinema"),
    ]
    for args, message in cases:
        run = kinema_t2v(*args, "--device", "cpu")
        lines = run.stderr.strip().splitlines()
        assert run.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error:"), run.output
        assert message in lines[0], lines[0]
    assert taken.read_bytes() == b"mine"
    assert sorted(p.name for p in work.iterdir()) == ["taken.mp4"]


def test_a_cancel_during_the_steps_writes_nothing_and_overwrite_replaces(tiny_wan: Path, tmp_path: Path):
    from kinema.app.t2v_jobs import ClipSettings, make_clip
    from kinema.core.jobs import CancelledError, CancelToken, run

    work = tmp_path / "work"
    work.mkdir()
    token = CancelToken()

    def stop_after_the_first_step(event) -> None:
        if event.done == 1:
            token.cancel()

    settings = ClipSettings("a cat", frames=5, size=(32, 32), steps=3)
    with pytest.raises(CancelledError):
        run(make_clip(settings, work / "clip.mp4", model=tiny_wan, device="cpu"), token,
            stop_after_the_first_step)
    assert list(work.iterdir()) == []
    out = work / "clip.mp4"
    out.write_bytes(b"old")
    run(make_clip(settings, out, model=tiny_wan, device="cpu", overwrite=True))
    assert out.stat().st_size > 100 and recipe_of(out).frames == 5
