"""The video diffusion models: registry entries (AnimateDiff's SD1.5 set, Wan 2.1 T2V and VACE)
and their tiny random-weight folders, loaded by the diffusers pipelines that will load the real
weights, each run once on the CPU (frames are noise: shapes, determinism and plumbing only)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("ftfy")  # the Wan pipelines clean prompts with it

from typer.testing import CliRunner

from kinema.cli.main import app
from kinema.core.hashing import file_sha256
from kinema.models import registry
from kinema.models.tiny import BUILDERS, FAMILIES, SETS, build_tiny, model_named
from kinema.models.tiny_video import ADAPTER, CANNY, OPENPOSE, SD15

VIDEO_MODELS = ("sd15-base", "animatediff-v1-5-3", "controlnet-openpose-sd15", "controlnet-canny-sd15",
                "wan2.1-t2v-1.3b", "wan2.1-vace-1.3b")
SIZE = 32


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def weights_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*.safetensors"))}


def frames(n: int, seed: int, size: int = SIZE):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def generator(seed: int = 0):
    import torch

    return torch.Generator().manual_seed(seed)


# -- the registry -------------------------------------------------------------------------------


def test_the_video_entries_are_complete_and_consistent():
    for name in VIDEO_MODELS:
        entry = registry.spec(name)
        assert entry.name == name and "/" in entry.repo and entry.size_mb > 0
        assert entry.licence and entry.vram and entry.description
        assert re.fullmatch(r"[0-9a-f]{40}", entry.revision) or entry.revision == "main", name
        assert entry.files, f"{name} pulls the whole repository"
        assert registry.DEFAULTS[entry.task] == name  # each is its task's default
        assert not any("safety_checker" in pattern for pattern in entry.files)
    sd15 = registry.spec("sd15-base")
    assert sd15.variant == "fp16" and "model_index.json" in sd15.files
    assert all(pattern.startswith(("model_index", "feature_extractor/", "scheduler/", "tokenizer/", "unet/",
                                   "vae/", "text_encoder/")) for pattern in sd15.files)
    animatediff = registry.spec("animatediff-v1-5-3").card
    assert animatediff == {"steps": 25, "guidance": 7.5, "scheduler": "ddim", "size": [512, 512],
                           "fps": 8, "frames": 16, "beta_schedule": "linear"}
    for name in ("wan2.1-t2v-1.3b", "wan2.1-vace-1.3b"):
        card = registry.spec(name).card
        assert card["size"] == [832, 480] and card["fps"] == 16 and card["frames"] == 81
        assert card["flow_shift"] == 3.0 and card["scheduler"] == "unipc"
        assert (card["frames"] - 1) % 4 == 0 and card["size"][0] % 16 == card["size"][1] % 16 == 0
    assert "8.19 GB" in registry.spec("wan2.1-t2v-1.3b").vram


def test_every_registry_model_has_a_tiny_builder():
    for entry in registry.MODELS.values():
        assert entry.family in BUILDERS, entry.name
    for family, name in FAMILIES.items():
        assert name in registry.MODELS, family
    assert model_named("wan") == "wan2.1-t2v-1.3b" and model_named("wan-vace") == "wan2.1-vace-1.3b"


def test_resolve_keeps_the_tasks_apart():
    from kinema.core.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="text-to-image-sd15 model, this needs text-to-image"):
        registry.resolve("sd15-base", task="text-to-image")
    with pytest.raises(InvalidArgumentError, match="text-to-video model, this needs video-edit"):
        registry.resolve("wan2.1-t2v-1.3b", task="video-edit")


def test_models_list_shows_what_each_needs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("KINEMA_MODELS", str(tmp_path))
    run = CliRunner().invoke(app, ["models", "list", "--json"])
    assert run.exit_code == 0, run.output
    rows = {row["name"]: row for row in json.loads(run.output)}
    assert "22.7 GB" in rows["wan2.1-t2v-1.3b"]["vram"] and rows["sam2-tiny"]["vram"] is None
    assert rows["animatediff-v1-5-3"]["task"] == "motion-adapter"


# -- AnimateDiff ---------------------------------------------------------------------------------


def test_the_tiny_animatediff_set_has_the_real_layout(tiny_animatediff: Path):
    assert sorted(p.name for p in tiny_animatediff.iterdir()) == sorted([SD15, ADAPTER, OPENPOSE, CANNY])
    index = json.loads((tiny_animatediff / SD15 / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline" and index["safety_checker"] == [None, None]
    assert index["feature_extractor"] == ["transformers", "CLIPImageProcessor"]
    adapter = json.loads((tiny_animatediff / ADAPTER / "config.json").read_text())
    assert adapter["_class_name"] == "MotionAdapter" and adapter["use_motion_mid_block"] is False
    assert adapter["motion_max_seq_length"] == 32
    card = json.loads((tiny_animatediff / ADAPTER / "kinema.json").read_text())
    assert card["frames"] == 8 and card["fps"] == 8 and card["scheduler"] == "ddim"
    for part in (SD15, ADAPTER, OPENPOSE, CANNY):
        assert registry.is_model_folder(tiny_animatediff / part)
        assert folder_bytes(tiny_animatediff / part) < 2_000_000, part
    assert folder_bytes(tiny_animatediff) < 3_000_000


def _animatediff(folder: Path, controlnet: str = OPENPOSE):
    from diffusers import (
        AnimateDiffVideoToVideoControlNetPipeline,
        ControlNetModel,
        DDIMScheduler,
        MotionAdapter,
    )

    pipe = AnimateDiffVideoToVideoControlNetPipeline.from_pretrained(
        folder / SD15, motion_adapter=MotionAdapter.from_pretrained(folder / ADAPTER),
        controlnet=ControlNetModel.from_pretrained(folder / controlnet))
    # The scheduler AnimateDiff's card names (DDIM, linear betas), as the video engine will set it.
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, beta_schedule="linear",
                                               clip_sample=False, steps_offset=1, timestep_spacing="linspace")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _restyle(pipe, cond_seed: int = 1, seed: int = 0) -> np.ndarray:
    return pipe(video=frames(8, 0), conditioning_frames=frames(8, cond_seed), prompt="a red car",
                negative_prompt="", strength=0.6, num_inference_steps=2, guidance_scale=5.0, height=SIZE,
                width=SIZE, generator=generator(seed), output_type="np", decode_chunk_size=4).frames


def test_tiny_animatediff_restyles_a_clip(tiny_animatediff: Path):
    from diffusers import UNetMotionModel

    pipe = _animatediff(tiny_animatediff)
    assert isinstance(pipe.unet, UNetMotionModel)
    start = time.perf_counter()
    out = _restyle(pipe)
    assert time.perf_counter() - start < 20
    assert out.shape == (1, 8, SIZE, SIZE, 3) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(_restyle(pipe), out)  # same seed, same frames
    assert not np.array_equal(_restyle(pipe, cond_seed=2), out)  # the condition acts
    assert not np.array_equal(_restyle(pipe, seed=1), out)


def test_the_canny_controlnet_and_the_motion_act(tiny_animatediff: Path):
    import torch

    canny = _restyle(_animatediff(tiny_animatediff, CANNY))
    assert canny.shape == (1, 8, SIZE, SIZE, 3)
    pipe = _animatediff(tiny_animatediff)
    moving = _restyle(pipe)
    outputs = [p for name, p in pipe.unet.named_parameters()
               if "motion_modules" in name and name.endswith("proj_out.weight")]
    assert outputs
    with torch.no_grad():  # the motion modules' outputs at zero: each frame on its own
        for param in outputs:
            param.zero_()
    assert not np.allclose(_restyle(pipe), moving)


def test_an_sd15_folder_as_pulled_loads(tiny_animatediff: Path, tmp_path: Path):
    """The hub's model_index.json lists the safety checker kinema does not pull."""
    import shutil

    copy = shutil.copytree(tiny_animatediff, tmp_path / "models")
    index_path = copy / SD15 / "model_index.json"
    index = json.loads(index_path.read_text())
    index["safety_checker"] = ["stable_diffusion", "StableDiffusionSafetyChecker"]
    index["requires_safety_checker"] = True
    index_path.write_text(json.dumps(index))
    assert _restyle(_animatediff(copy)).shape == (1, 8, SIZE, SIZE, 3)


def test_kinema_models_finds_the_tiny_set_by_name(tiny_animatediff: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KINEMA_MODELS", str(tiny_animatediff))
    for name in (SD15, ADAPTER, OPENPOSE, CANNY):
        assert registry.resolve(name, task=registry.spec(name).task) == tiny_animatediff / name


# -- Wan 2.1 -------------------------------------------------------------------------------------


def test_the_tiny_wan_folders_have_the_real_layout(tiny_wan: Path, tiny_wan_vace: Path):
    for folder, pipeline, transformer in ((tiny_wan, "WanPipeline", "WanTransformer3DModel"),
                                          (tiny_wan_vace, "WanVACEPipeline", "WanVACETransformer3DModel")):
        index = json.loads((folder / "model_index.json").read_text())
        assert index["_class_name"] == pipeline and index["transformer"] == ["diffusers", transformer]
        assert index["text_encoder"] == ["transformers", "UMT5EncoderModel"]
        assert index["vae"] == ["diffusers", "AutoencoderKLWan"]
        assert index["scheduler"] == ["diffusers", "UniPCMultistepScheduler"]
        scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
        assert scheduler["flow_shift"] == 3.0 and scheduler["use_flow_sigmas"] is True
        card = json.loads((folder / "kinema.json").read_text())
        assert card["fps"] == 16 and (card["frames"] - 1) % 4 == 0 and card["flow_shift"] == 3.0
        assert folder_bytes(folder) < 2_000_000


def test_the_t5_tokenizer_made_in_code(tiny_wan: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_wan / "tokenizer")
    ids = tok("a red car zq", padding="max_length", max_length=16, truncation=True).input_ids
    assert len(ids) == 16 and ids[-1] == 0 and 1 in ids  # </s> then padding
    assert tok.convert_ids_to_tokens(ids[:3]) == ["\u2581a", "\u2581red", "\u2581car"]


def _wan(folder: Path, cls: str):
    import diffusers

    pipe = getattr(diffusers, cls).from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _t2v(pipe, prompt: str = "a red car on the road", seed: int = 0) -> np.ndarray:
    return pipe(prompt=prompt, negative_prompt="", height=SIZE, width=SIZE, num_frames=9,
                num_inference_steps=2, guidance_scale=5.0, generator=generator(seed), max_sequence_length=16,
                output_type="np").frames


def test_tiny_wan_makes_a_clip_from_words(tiny_wan: Path):
    pipe = _wan(tiny_wan, "WanPipeline")
    out = _t2v(pipe)
    assert out.shape == (1, 9, SIZE, SIZE, 3) and np.isfinite(out).all()
    np.testing.assert_array_equal(_t2v(pipe), out)
    assert not np.array_equal(_t2v(pipe, prompt="a blue dog"), out)
    assert not np.array_equal(_t2v(pipe, seed=1), out)
    wide = pipe(prompt="a cat", height=SIZE, width=2 * SIZE, num_frames=5, num_inference_steps=1,
                guidance_scale=1.0, generator=generator(), max_sequence_length=16, output_type="np").frames
    assert wide.shape == (1, 5, SIZE, 2 * SIZE, 3)


def _vace(pipe, control_seed: int = 0, seed: int = 0, reference: bool = True) -> np.ndarray:
    from PIL import Image

    mask = [Image.new("L", (SIZE, SIZE), 0)] + [Image.new("L", (SIZE, SIZE), 255)] * 8
    return pipe(prompt="a dog", negative_prompt="", video=frames(9, control_seed), mask=mask,
                reference_images=frames(1, 99, size=24) if reference else None, height=SIZE, width=SIZE,
                num_frames=9, num_inference_steps=2, guidance_scale=5.0, generator=generator(seed),
                max_sequence_length=16, output_type="np").frames


def test_tiny_wan_vace_follows_its_control_frames(tiny_wan_vace: Path):
    pipe = _wan(tiny_wan_vace, "WanVACEPipeline")
    out = _vace(pipe)
    assert out.shape == (1, 9, SIZE, SIZE, 3) and np.isfinite(out).all()
    np.testing.assert_array_equal(_vace(pipe), out)
    assert not np.array_equal(_vace(pipe, control_seed=5), out)  # the video acts
    assert not np.array_equal(_vace(pipe, reference=False), out)  # so does the reference


# -- builders and the command ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["wan", "wan-vace", "animatediff"])
def test_builds_are_quick_small_and_the_same_every_time(name: str, tmp_path: Path):
    build_tiny(name, tmp_path / "warm")  # imports and first-use costs
    start = time.perf_counter()
    first = build_tiny(name, tmp_path / "a")
    assert time.perf_counter() - start < 2.0
    assert weights_hashes(first) == weights_hashes(build_tiny(name, tmp_path / "b"))
    assert len(weights_hashes(first)) >= 3


def test_kinema_models_tiny_writes_them(tmp_path: Path):
    runner = CliRunner()
    run = runner.invoke(app, ["models", "tiny", "animatediff", str(tmp_path / "ad")])
    assert run.exit_code == 0, run.output
    assert "controlnet-canny-sd15" in run.output and "KINEMA_MODELS=" in run.output
    assert (tmp_path / "ad" / ADAPTER / "config.json").is_file()
    for name in ("wan", "wan-vace"):
        run = runner.invoke(app, ["models", "tiny", name, str(tmp_path / name)])
        assert run.exit_code == 0, run.output
        assert "--model" in run.output and (tmp_path / name / "model_index.json").is_file()
    run = runner.invoke(app, ["models", "tiny", "wan", str(tmp_path / "wan")])
    assert run.exit_code != 0 and "not empty" in run.output
    assert set(SETS) == {"animatediff"}
