"""kinema lora train with the tiny SDXL: the loss goes down, the file loads back and acts by
weight, a resumed run reaches the uninterrupted run's weights, bad input is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kinema.core.errors import InvalidArgumentError, OutputExistsError
from kinema.core.jobs import run

pytest.importorskip("peft")
from kinema.app.lora_jobs import LoraResult, checkpoint_folder, train
from kinema.generate.lora_train import LoraSettings

# A learning rate and batch at which the tiny random UNet's loss falls clearly in 30 steps.
SETTINGS = LoraSettings("sks shape", steps=30, rank=4, lr=2e-2, batch=2, resolution=64, seed=0,
                        checkpoint_every=10)
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four coloured 64x64 rectangles, shifted a little each, as PNGs (and a note to skip)."""
    from kinema.media.image import write_image

    folder = tmp_path_factory.mktemp("pictures")
    for i, colour in enumerate(COLOURS):
        image = np.zeros((64, 64, 3), np.uint8)
        image[16:48, 8 + 4 * i:40 + 4 * i] = colour
        write_image(folder / f"shape{i}.png", image)
    (folder / "notes.txt").write_text("not a picture")
    return folder


@pytest.fixture(scope="module")
def trained(pictures: Path, tiny_sdxl: Path, tmp_path_factory: pytest.TempPathFactory) -> LoraResult:
    out = tmp_path_factory.mktemp("lora") / "shape.safetensors"
    return run(train(pictures, out, SETTINGS, model=tiny_sdxl, device="cpu"))


def weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def test_loss_goes_down_and_the_recipe_is_recorded(trained: LoraResult, pictures: Path) -> None:
    from kinema.core.hashing import file_sha256

    losses = trained.losses
    assert len(losses) == 30 and trained.first_step == 1
    assert np.mean(losses[-10:]) < 0.97 * np.mean(losses[:10]), np.round(losses, 3)
    assert trained.output.is_file() and not checkpoint_folder(trained.output).exists()
    assert all(k.startswith("unet.") and "lora" in k for k in weights(trained.output))
    record = json.loads(trained.record.read_text())
    recipe = record["operations"][0]
    assert recipe["operation"] == "lora-train" and recipe["prompt"] == "a photo of sks shape"
    assert (recipe["token"], recipe["steps"], recipe["rank"], recipe["lr"], recipe["seed"]) == \
        ("sks shape", 30, 4, 2e-2, 0)
    assert recipe["model"]["weights_sha256"] and recipe["device"] == "cpu"
    hashes = {i["id"]: i["sha256"] for i in recipe["inputs"]}
    assert hashes == {f"shape{i}.png": file_sha256(pictures / f"shape{i}.png") for i in range(4)}


def test_the_lora_loads_and_acts_by_weight(trained: LoraResult, tiny_sdxl: Path) -> None:
    from kinema.generate.sdxl import ImageGenerator, Request

    request = Request("a photo of sks shape", seed=1)
    plain = ImageGenerator(tiny_sdxl, device="cpu").generate(request)
    off = ImageGenerator(tiny_sdxl, loras=[(trained.output, 0.0)], device="cpu").generate(request)
    on = ImageGenerator(tiny_sdxl, loras=[(trained.output, 1.0)], device="cpu").generate(request)
    assert np.array_equal(off, plain)
    assert np.abs(on.astype(int) - plain).mean() > 1


def test_resume_reaches_the_uninterrupted_weights(trained: LoraResult, pictures: Path, tiny_sdxl: Path,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "shape.safetensors"
    steps = train(pictures, out, SETTINGS, model=tiny_sdxl, device="cpu")
    for event in steps:
        if event.done == 21:
            break
    steps.close()  # as a cancel does: the newest checkpoint (step 20) stays, no output
    store = checkpoint_folder(out)
    assert [p.name for p in store.iterdir() if not p.name.startswith(".")] == ["step-000020"]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".partial-" in p.name]

    with pytest.raises(OutputExistsError, match="checkpoints of an earlier training"):
        run(train(pictures, out, SETTINGS, model=tiny_sdxl, device="cpu"))
    other = LoraSettings(**{**SETTINGS.__dict__, "lr": 1e-3, "rank": 8})
    with pytest.raises(InvalidArgumentError, match=r"made with other lr, rank"):
        run(train(pictures, out, other, model=tiny_sdxl, device="cpu", resume=True))

    resumed = run(train(pictures, out, SETTINGS, model=tiny_sdxl, device="cpu", resume=True))
    assert resumed.first_step == 21 and len(resumed.losses) == 10
    assert np.allclose(resumed.losses, trained.losses[20:], rtol=1e-5)
    a, b = weights(trained.output), weights(out)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_bad_input_is_one_error_naming_the_file(pictures: Path, tiny_sdxl: Path, tmp_path: Path) -> None:
    def attempt(images: Path, out: Path = tmp_path / "x.safetensors", **kwargs: object) -> None:
        run(train(images, out, SETTINGS, model=tiny_sdxl, device="cpu", **kwargs))

    with pytest.raises(InvalidArgumentError, match="missing.*not a folder of pictures"):
        attempt(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no pictures here")
    with pytest.raises(InvalidArgumentError, match="empty.*holds no pictures"):
        attempt(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "torn.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InvalidArgumentError, match="cannot read 1 picture.*torn.png"):
        attempt(broken)
    taken = tmp_path / "taken.safetensors"
    taken.write_bytes(b"")
    with pytest.raises(OutputExistsError, match="already exists"):
        attempt(pictures, taken)
    with pytest.raises(InvalidArgumentError, match=r"\.safetensors"):
        attempt(pictures, tmp_path / "face.pt")
    with pytest.raises(InvalidArgumentError, match="multiple of 8"):
        run(train(pictures, tmp_path / "y.safetensors", LoraSettings("sks", resolution=60), model=tiny_sdxl))


def test_command_trains_and_reports_errors_in_one_line(pictures: Path, tiny_sdxl: Path,
                                                       tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kinema.cli.main import app

    out = tmp_path / "face.safetensors"
    args = ["lora", "train", str(pictures), "--token", "sks shape", "--steps", "1", "--resolution", "64",
            "--model", str(tiny_sdxl), "--device", "cpu", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "slow" in result.output and "wrote" in result.output and "step 1: loss" in result.output
    assert out.is_file() and out.with_name(out.name + ".provenance.json").is_file()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and "error:" in again.output and "already exists" in again.output
    elsewhere = [*args[:2], str(tmp_path / "nowhere"), *args[3:-1], str(tmp_path / "other.safetensors")]
    missing = CliRunner().invoke(app, elsewhere)
    assert missing.exit_code == 2 and "nowhere" in missing.output


def test_prior_preservation_draws_and_keeps_class_pictures(tiny_sdxl: Path, tmp_path: Path) -> None:
    from kinema.generate.lora_train import CLASS_IMAGES_FILE, train_lora

    shapes = [np.full((48, 80, 3), c, np.uint8) for c in COLOURS[:2]]
    settings = LoraSettings("sks shape", class_prompt="a photo of a shape", class_images=2, steps=2,
                            resolution=64, checkpoint_every=1)
    trained = run(train_lora(tiny_sdxl, shapes, settings, checkpoint_folder=tmp_path, device="cpu"))
    assert len(trained.losses) == 2 and all(np.isfinite(trained.losses))
    with np.load(tmp_path / CLASS_IMAGES_FILE) as kept:
        assert kept["images"].shape == (2, 64, 64, 3)
