"""SDXL generation through kinema.generate.sdxl with tiny random-weight models: seeds replay
bit-identically, each kind of call and condition acts, LoRA weights mix as asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kinema.core.errors import InvalidArgumentError, ModelNotFoundError

pytest.importorskip("diffusers")
from kinema.generate.sdxl import Card, Control, ImageGenerator, Request


@pytest.fixture(scope="module")
def generator(tiny_sdxl: Path, tiny_controlnet: Path) -> ImageGenerator:
    return ImageGenerator(tiny_sdxl, controlnets={"canny": tiny_controlnet, "pose": tiny_controlnet},
                          device="cpu")


def square(size: int = 64) -> np.ndarray:
    image = np.zeros((size, size, 3), np.uint8)
    image[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
    return image


def test_card_fills_unset_settings(generator: ImageGenerator) -> None:
    assert generator.card == Card(steps=2, guidance=5.0, scheduler="euler", size=(64, 64))
    settled = Request("a dog", steps=3).settled(generator.card)
    assert (settled.steps, settled.guidance, settled.scheduler, settled.size) == (3, 5.0, "euler", (64, 64))
    image = np.zeros((48, 80, 3), np.uint8)
    assert Request("a dog", image=image).settled(generator.card).size == (80, 48)


def test_same_seed_same_pixels_other_seed_other_pixels(generator: ImageGenerator) -> None:
    a = generator.generate(Request("a red dog", seed=3))
    b = generator.generate(Request("a red dog", seed=3))
    c = generator.generate(Request("a red dog", seed=4))
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 5


def test_size_and_scheduler_are_honoured(generator: ImageGenerator) -> None:
    wide = generator.generate(Request("a dog", size=(96, 48)))
    assert wide.shape == (48, 96, 3)
    euler = generator.generate(Request("a dog", seed=1))
    dpm = generator.generate(Request("a dog", seed=1, scheduler="dpm++"))
    assert not np.array_equal(euler, dpm)
    assert np.array_equal(generator.generate(Request("a dog", seed=1)), euler)  # switched back
    with pytest.raises(InvalidArgumentError, match="scheduler"):
        generator.generate(Request("a dog", scheduler="nope"))
    with pytest.raises(InvalidArgumentError, match="multiple of 8"):
        generator.generate(Request("a dog", size=(60, 64)))


def test_controls_act_by_weight_and_several_combine(generator: ImageGenerator) -> None:
    plain = generator.generate(Request("a dog", seed=2))
    off = generator.generate(Request("a dog", seed=2, controls=[Control("canny", square(), weight=0.0)]))
    on = generator.generate(Request("a dog", seed=2, controls=[Control("canny", square(), weight=1.0)]))
    assert np.array_equal(off, plain)  # weight 0: the ControlNet adds nothing
    assert np.abs(on.astype(int) - plain).max() > 10
    both = generator.generate(Request("a dog", seed=2, controls=[
        Control("canny", square(), 1.0), Control("pose", square(32), 0.5, start=0.0, end=0.5)]))
    assert both.shape == (64, 64, 3) and not np.array_equal(both, on)
    with pytest.raises(InvalidArgumentError, match="depth"):
        generator.generate(Request("a dog", controls=[Control("depth", square())]))


def test_image_to_image_and_inpainting(generator: ImageGenerator) -> None:
    source = generator.generate(Request("a red dog", seed=5))
    steps: list[tuple[int, int]] = []
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 16:48] = 1
    painted = generator.generate(Request("a blue cat", seed=5, image=source, mask=mask, strength=1.0),
                                 on_step=lambda i, n: steps.append((i, n)))
    assert steps == [(1, 2), (2, 2)]
    assert painted.shape == source.shape and not np.array_equal(painted, source)
    moved = generator.generate(Request("a red dog", seed=5, image=source, strength=0.5))
    assert moved.shape == source.shape


def test_lora_weight_zero_is_the_model_without_it(tiny_sdxl: Path, tiny_lora: Path,
                                                  generator: ImageGenerator) -> None:
    without = generator.generate(Request("a red dog", seed=3))
    at_zero = ImageGenerator(tiny_sdxl, loras=[(tiny_lora, 0.0)], device="cpu")
    assert np.array_equal(at_zero.generate(Request("a red dog", seed=3)), without)
    at_one = ImageGenerator(tiny_sdxl, loras=[(tiny_lora, 1.0)], device="cpu")
    assert np.abs(at_one.generate(Request("a red dog", seed=3)).astype(int) - without).mean() > 5


def test_missing_models_name_the_fix(tmp_path: Path, tiny_sdxl: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="model_index.json"):
        ImageGenerator(tmp_path)
    with pytest.raises(ModelNotFoundError, match="LoRA"):
        ImageGenerator(tiny_sdxl, loras=[(tmp_path / "gone.safetensors", 1.0)])
