"""DreamBooth LoRA training of an SDXL UNet, with checkpoints a rerun resumes exactly.

The recipe of diffusers' ``train_dreambooth_lora_sdxl`` example, written for kinema: a peft LoRA
on the UNet's attention projections (``to_q``, ``to_k``, ``to_v``, ``to_out.0``) learns to
denoise the instance pictures under the instance prompt ("a photo of sks person"); the VAE
and both text encoders stay frozen, so the pictures' latent distributions and the prompts'
embeddings are computed once and the encoders freed. Each step draws a batch (each picture
once per epoch, in a seeded order), flips each picture or not, samples its latent, adds noise
at random timesteps and takes an AdamW step on the MSE between the UNet's prediction and the
scheduler's target (the noise, or the velocity for v-prediction models), with SDXL's added
conditions (original size, crop, target size; the pooled embedding of the second encoder).
With a class prompt the base model first draws class pictures and each step adds their
denoising loss (prior preservation: the class keeps its look; the token gets the identity).

The LoRA parameters stay in float32 while the frozen base runs in half precision on a GPU.
Every ``checkpoint_every`` steps the LoRA weights, the optimizer, the step and the random
state go atomically into ``step-NNNNNN/`` of the checkpoint folder with the training inputs
(settings, picture and model hashes); resuming from one reaches the weights an uninterrupted
run reaches. Arrays in: pictures are ``uint8 (H, W, 3)`` RGB.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kinema.core.errors import InvalidArgumentError, ModelNotFoundError
from kinema.core.extras import require
from kinema.core.jobs import Progress, Steps
from kinema.generate.sdxl import weights_variant
from kinema.models.device import placement, quiet_diffusers

log = logging.getLogger(__name__)

TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]
CHECKPOINT_PREFIX = "step-"
CLASS_IMAGES_FILE = "class-images.npz"
WEIGHT_DECAY = 1e-4
MAX_GRAD_NORM = 1.0


@dataclass(frozen=True)
class LoraSettings:
    """What to train: the ``token`` phrase (the instance prompt is "a photo of TOKEN" unless
    ``prompt`` gives it), an optional ``class_prompt`` with ``class_images`` pictures drawn by
    the base model for prior preservation (their loss weighted ``prior_weight``), and the
    optimisation: steps, LoRA rank, learning rate, batch size, square resolution, seed."""

    token: str
    prompt: str | None = None
    class_prompt: str | None = None
    class_images: int = 50
    prior_weight: float = 1.0
    steps: int = 500
    rank: int = 4
    lr: float = 1e-4
    batch: int = 1
    resolution: int = 1024
    seed: int = 0
    checkpoint_every: int = 100
    gradient_checkpointing: bool = False

    @property
    def instance_prompt(self) -> str:
        return self.prompt or f"a photo of {self.token}"

    def check(self) -> None:
        """Refuse settings no training can run with."""
        if not self.token.strip():
            raise InvalidArgumentError("--token is empty", hint='give the phrase to learn, e.g. "sks person"')
        for name in ("steps", "rank", "batch", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise InvalidArgumentError(f"--{name.replace('_', '-')} must be 1 or more")
        if self.resolution < 8 or self.resolution % 8:
            raise InvalidArgumentError(f"--resolution {self.resolution} is not a multiple of 8",
                                       hint="SDXL works on 8-pixel latents: 1024, 768, 512, ...")
        if not self.lr > 0:
            raise InvalidArgumentError(f"--lr must be positive, got {self.lr}")
        if self.class_prompt is not None and self.class_images < 1:
            raise InvalidArgumentError("--class-images must be 1 or more with --class-prompt")

    def fingerprint(self) -> dict[str, Any]:
        """The settings the weights of a step depend on (not how many steps there will be, how
        often they are saved, or whether activations are recomputed to save memory)."""
        skip = {"steps", "checkpoint_every", "gradient_checkpointing"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


@dataclass
class Trained:
    """The result: the LoRA in diffusers' key layout (CPU tensors), its peft config, where it
    was trained, and the losses of the steps run by this call (a resumed run starts at
    ``first_step``)."""

    layers: dict[str, Any]
    config: dict[str, Any]
    device: str
    dtype: str
    losses: list[float] = field(default_factory=list)
    first_step: int = 1


@dataclass
class _Set:
    """One kind of training picture, ready on the device: latent mean and std (picture,
    [as is, flipped], C, h, w), SDXL time ids per picture, and the prompt's embeddings."""

    mean: Any
    std: Any
    time_ids: Any
    embeds: Any
    pooled: Any

    def __len__(self) -> int:
        return int(self.mean.shape[0])


def square(image: np.ndarray, resolution: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """``image`` resized (bilinear) so its shorter side is ``resolution`` and centre-cropped
    square, with its SDXL time ids: original (h, w), crop top-left (y, x), target (h, w)."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = resolution / min(h, w)
    rh, rw = max(resolution, round(h * scale)), max(resolution, round(w * scale))
    resized = np.asarray(Image.fromarray(image).resize((rw, rh), Image.BILINEAR))
    y, x = round((rh - resolution) / 2), round((rw - resolution) / 2)
    crop = resized[y:y + resolution, x:x + resolution]
    return crop, (h, w, y, x, resolution, resolution)


def checkpoints(folder: Path) -> list[Path]:
    """The finished checkpoints in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX))


def differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The names of the training inputs that differ between a checkpoint and this run."""
    return sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))


def check_resumable(checkpoint: Path, inputs: Mapping[str, Any]) -> None:
    """Refuse to continue from ``checkpoint`` when it was made from other training inputs,
    naming them."""
    changed = differences(json.loads((checkpoint / "inputs.json").read_text()), inputs)
    if changed:
        raise InvalidArgumentError(
            f"the checkpoints in {checkpoint.parent} were made with other {', '.join(changed)}",
            hint="resume with the same images, model and settings, or pass --overwrite to start over")


def _batch(step: int, size: int, count: int, seed: int) -> list[int]:
    """The pictures of ``step`` (from 1): each picture once per epoch in an order seeded by
    the epoch, so any step's batch is known without replaying the ones before it."""
    torch = require("torch", "ml", feature="LoRA training")
    picks = []
    for k in range((step - 1) * size, step * size):
        epoch, at = divmod(k, count)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        picks.append(int(order[at]))
    return picks


class _Training:
    """The models and state of one training run on one device."""

    def __init__(self, folder: Path, settings: LoraSettings, device: Any, dtype: Any) -> None:
        self.torch, self.diffusers = quiet_diffusers("LoRA training")
        require("peft", "ml", feature="LoRA training")
        self.folder, self.settings = folder, settings
        self.device, self.dtype = placement(device, dtype)
        if self.device.type == "cpu":
            log.warning("training a LoRA on the CPU is slow: a GPU does it many times faster")
        self.scheduler = self.diffusers.DDPMScheduler.from_pretrained(folder, subfolder="scheduler")
        self.generator = self.torch.Generator(device=self.device).manual_seed(settings.seed)
        self.unet: Any = None
        self.optimizer: Any = None

    def prepare(self, images: Sequence[np.ndarray], class_images: Sequence[np.ndarray]) -> list[_Set]:
        """The instance set (and the class set when there are class pictures), encoded by the
        frozen VAE and text encoders, which are then let go."""
        prompts = [self.settings.instance_prompt] + ([self.settings.class_prompt] if class_images else [])
        embeddings = self._embed(prompts)
        sets = [self._encode(images, *embeddings[0])]
        if class_images:
            sets.append(self._encode(class_images, *embeddings[1]))
        return sets

    def _embed(self, prompts: list[str]) -> list[tuple[Any, Any]]:
        """Each prompt's token embeddings (the two encoders' penultimate states side by side)
        and pooled embedding (the second encoder's projection), as SDXL conditions on them."""
        from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

        pairs = [(CLIPTokenizer.from_pretrained(self.folder, subfolder="tokenizer"),
                  CLIPTextModel.from_pretrained(self.folder, subfolder="text_encoder", dtype=self.dtype,
                                                variant=weights_variant(self.folder, "text_encoder"))),
                 (CLIPTokenizer.from_pretrained(self.folder, subfolder="tokenizer_2"),
                  CLIPTextModelWithProjection.from_pretrained(
                      self.folder, subfolder="text_encoder_2", dtype=self.dtype,
                      variant=weights_variant(self.folder, "text_encoder_2")))]
        found = []
        with self.torch.no_grad():
            for prompt in prompts:
                states, pooled = [], None
                for tokenizer, encoder in pairs:
                    encoder.to(self.device)
                    ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length,
                                    truncation=True, return_tensors="pt").input_ids.to(self.device)
                    out = encoder(ids, output_hidden_states=True)
                    states.append(out.hidden_states[-2])
                    pooled = out[0]
                found.append((self.torch.cat(states, dim=-1), pooled))
        return found

    def _encode(self, images: Sequence[np.ndarray], embeds: Any, pooled: Any) -> _Set:
        """Pictures squared to the resolution and encoded, as is and flipped, by the VAE (in
        float32: SDXL's VAE overflows in half precision)."""
        torch = self.torch
        vae = self.diffusers.AutoencoderKL.from_pretrained(self.folder, subfolder="vae", dtype=torch.float32,
                                                           variant=weights_variant(self.folder, "vae"))
        vae.to(self.device)
        means, stds, time_ids = [], [], []
        with torch.no_grad():
            for image in images:
                crop, ids = square(image, self.settings.resolution)
                pixels = torch.from_numpy(np.stack([crop, crop[:, ::-1]]).copy()).to(self.device)
                pixels = pixels.permute(0, 3, 1, 2).float() / 127.5 - 1.0
                dist = vae.encode(pixels).latent_dist
                means.append(dist.mean)
                stds.append(dist.std)
                time_ids.append(ids)
        scale = float(vae.config.scaling_factor)
        return _Set(torch.stack(means) * scale, torch.stack(stds) * scale,
                    torch.tensor(time_ids, dtype=self.dtype, device=self.device), embeds, pooled)

    def start(self) -> None:
        """The UNet with a fresh LoRA (seeded), float32 trainable weights, and its optimizer."""
        torch, s = self.torch, self.settings
        from peft import LoraConfig

        self.unet = self.diffusers.UNet2DConditionModel.from_pretrained(
            self.folder, subfolder="unet", dtype=self.dtype, variant=weights_variant(self.folder, "unet"))
        self.unet.requires_grad_(False)
        self.lora_config = LoraConfig(r=s.rank, lora_alpha=s.rank, init_lora_weights="gaussian",
                                      target_modules=TARGET_MODULES)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed)
            self.unet.add_adapter(self.lora_config)
        self.unet.to(self.device)
        params = [p for p in self.unet.parameters() if p.requires_grad]
        for p in params:
            p.data = p.data.float()
        if s.gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        self.unet.train()
        self.optimizer = torch.optim.AdamW(params, lr=s.lr, betas=(0.9, 0.999), weight_decay=WEIGHT_DECAY,
                                           eps=1e-8)

    def step(self, step: int, sets: list[_Set]) -> float:
        """One optimisation step (``step`` from 1); returns its loss."""
        torch, s, g = self.torch, self.settings, self.generator
        latents, embeds, pooled, time_ids = [], [], [], []
        for one in sets:
            picks = torch.tensor(_batch(step, s.batch, len(one), s.seed), device=self.device)
            flips = (torch.rand(s.batch, generator=g, device=self.device) < 0.5).long()
            mean, std = one.mean[picks, flips], one.std[picks, flips]
            latents.append(mean + std * torch.randn(mean.shape, generator=g, device=self.device))
            embeds.append(one.embeds.expand(s.batch, -1, -1))
            pooled.append(one.pooled.expand(s.batch, -1))
            time_ids.append(one.time_ids[picks])
        clean = torch.cat(latents)
        noise = torch.randn(clean.shape, generator=g, device=self.device)
        config = self.scheduler.config
        timesteps = torch.randint(0, config.num_train_timesteps, (clean.shape[0],), generator=g,
                                  device=self.device)
        noisy = self.scheduler.add_noise(clean, noise, timesteps)
        added = {"text_embeds": torch.cat(pooled), "time_ids": torch.cat(time_ids)}
        pred = self.unet(noisy.to(self.dtype), timesteps, torch.cat(embeds), added_cond_kwargs=added,
                         return_dict=False)[0].float()
        if config.prediction_type == "v_prediction":
            target = self.scheduler.get_velocity(clean, noise, timesteps)
        elif config.prediction_type == "epsilon":
            target = noise
        else:
            raise InvalidArgumentError(f"cannot train a model that predicts {config.prediction_type!r}",
                                       hint="train on an epsilon or v-prediction SDXL model")
        parts = [torch.nn.functional.mse_loss(p, t)
                 for p, t in zip(pred.chunk(len(sets)), target.chunk(len(sets)), strict=True)]
        loss = parts[0] + s.prior_weight * sum(parts[1:])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.optimizer.param_groups[0]["params"], MAX_GRAD_NORM)
        self.optimizer.step()
        return float(loss.detach())

    def save_checkpoint(self, folder: Path, step: int, inputs: Mapping[str, Any]) -> Path:
        """The state after ``step`` into ``folder/step-NNNNNN`` (atomically), then the older
        checkpoints go."""
        from peft import get_peft_model_state_dict
        from safetensors.torch import save_file

        from kinema.core.atomic import commit, discard, temp_path_for

        target = folder / f"{CHECKPOINT_PREFIX}{step:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        temp = temp_path_for(target)
        try:
            temp.mkdir()
            save_file(_on_cpu(get_peft_model_state_dict(self.unet)), temp / "lora.safetensors")
            self.torch.save({"step": step, "optimizer": self.optimizer.state_dict(),
                             "generator": self.generator.get_state()}, temp / "state.pt")
            (temp / "inputs.json").write_text(json.dumps(dict(inputs), indent=1, sort_keys=True) + "\n")
            commit(temp, target, overwrite=False)
        except BaseException:
            discard(temp)
            raise
        for old in checkpoints(folder):
            if old != target:
                discard(old)
        return target

    def load_checkpoint(self, checkpoint: Path, inputs: Mapping[str, Any]) -> int:
        """Continue from ``checkpoint`` when it was made from the same inputs; returns its step."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        check_resumable(checkpoint, inputs)
        weights = load_file(checkpoint / "lora.safetensors", device=str(self.device))
        set_peft_model_state_dict(self.unet, weights)
        for p in self.optimizer.param_groups[0]["params"]:
            p.data = p.data.float()
        state = self.torch.load(checkpoint / "state.pt", map_location=self.device, weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"].cpu())
        return int(state["step"])

    def result(self) -> dict[str, Any]:
        """The LoRA in diffusers' key layout, on the CPU."""
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft import get_peft_model_state_dict

        return _on_cpu(convert_state_dict_to_diffusers(get_peft_model_state_dict(self.unet)))


def _on_cpu(tensors: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def class_pictures(folder: Path, settings: LoraSettings, cache: Path, device: Any,
                   dtype: Any) -> list[np.ndarray]:
    """The class pictures for prior preservation: drawn by the base model from the class
    prompt (seeds ``seed``, ``seed + 1``, ...) at the training resolution, kept in ``cache``
    so a resumed run trains on the same ones."""
    from kinema.core.atomic import atomic_write_bytes
    from kinema.generate.sdxl import ImageGenerator, Request

    if settings.class_prompt is None:
        return []
    if cache.is_file():
        with np.load(cache) as saved:
            return list(saved["images"])
    size = (settings.resolution, settings.resolution)
    generator = ImageGenerator(folder, device=device, dtype=dtype)
    images = [generator.generate(Request(settings.class_prompt, seed=settings.seed + i, size=size))
              for i in range(settings.class_images)]
    del generator
    buffer = io.BytesIO()
    np.savez(buffer, images=np.stack(images))
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(cache, buffer.getvalue())
    return images


def train_lora(folder: str | Path, images: Sequence[np.ndarray], settings: LoraSettings, *,
               checkpoint_folder: Path, inputs: Mapping[str, Any] | None = None, resume: bool = False,
               device: Any = None, dtype: Any = None) -> Steps[Trained]:
    """Train a LoRA for the SDXL pipeline in ``folder`` on ``images``: one :class:`Progress`
    per step (its loss in the message, ``checkpoint`` when the state was saved), checkpoints
    in ``checkpoint_folder``; with ``resume``, from the newest one there. ``inputs`` (picture
    and model hashes) join the settings in what a checkpoint must match to be resumed."""
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise ModelNotFoundError("is not a diffusers pipeline folder (no model_index.json)", path=folder,
                                 hint="give a folder from kinema models pull/tiny")
    settings.check()
    if not images:
        raise InvalidArgumentError("there are no pictures to train on")
    device, dtype = placement(device, dtype)
    dtype_name = str(dtype).removeprefix("torch.")
    fingerprint = {**settings.fingerprint(), **(inputs or {}), "device": device.type, "dtype": dtype_name}
    saved = checkpoints(checkpoint_folder) if resume else []
    if saved:  # a mismatch is refused before the slow part
        check_resumable(saved[-1], fingerprint)
        reached = int(saved[-1].name.removeprefix(CHECKPOINT_PREFIX))
        if reached >= settings.steps:
            raise InvalidArgumentError(f"the newest checkpoint is at step {reached}, past --steps "
                                       f"{settings.steps}", path=saved[-1], hint="ask for more steps")
    run = _Training(folder, settings, device, dtype)
    extra = class_pictures(folder, settings, checkpoint_folder / CLASS_IMAGES_FILE, run.device, run.dtype)
    sets = run.prepare(images, extra)
    run.start()
    done = run.load_checkpoint(saved[-1], fingerprint) if saved else 0
    trained = Trained({}, {}, str(device), dtype_name, first_step=done + 1)
    for step in range(done + 1, settings.steps + 1):
        loss = run.step(step, sets)
        trained.losses.append(loss)
        keep = step % settings.checkpoint_every == 0 and step < settings.steps
        if keep:
            run.save_checkpoint(checkpoint_folder, step, fingerprint)
        yield Progress(step, settings.steps, "steps", message=f"step {step}: loss {loss:.4f}",
                       checkpoint=keep)
    trained.layers = run.result()
    trained.config = run.lora_config.to_dict()
    return trained


def save_lora(trained: Trained, target: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``trained`` to ``target`` (``.safetensors``) atomically in diffusers' LoRA
    layout, so ``load_lora_weights`` and :class:`~kinema.generate.sdxl.ImageGenerator` load it."""
    from diffusers import StableDiffusionXLPipeline

    from kinema.core.atomic import check_can_write, commit, discard, naming_errors, output_path, temp_path_for

    target = output_path(target)
    check_can_write(target, overwrite)
    temp = temp_path_for(target)
    config = {k: sorted(v) if isinstance(v, set) else v for k, v in trained.config.items()}
    with naming_errors(target):
        try:
            StableDiffusionXLPipeline.save_lora_weights(temp.parent, unet_lora_layers=trained.layers,
                                                        weight_name=temp.name, safe_serialization=True,
                                                        unet_lora_adapter_metadata=config)
            commit(temp, target, overwrite)
        except BaseException:
            discard(temp)
            raise
    return target
