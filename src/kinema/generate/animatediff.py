"""AnimateDiff video-to-video with ControlNets, window by window (diffusers).

:class:`AnimateDiffEngine` loads a Stable Diffusion 1.5 pipeline folder, an AnimateDiff motion
adapter and any ControlNets once, and restyles one window of frames per :meth:`~AnimateDiffEngine.window`
call: the window's frames are encoded by the VAE (the distribution's mode: the same frame
always gives the same latents), noised to the strength's first timestep with each frame's own
noise (:func:`kinema.generate.video_windows.frame_noise`) and denoised together, the motion
modules attending across the window's frames (over FreeNoise's sliding contexts of 16 in a
longer window), the ControlNets seeing each frame's control image.

Consecutive windows agree on the frames they share: at every denoising step the shared frames'
latents are moved towards those the window before had at the same step (its weight falling
from 1 at the first shared frame to 0 past the last), so the later window continues the
earlier one's trajectory rather than starting a new one, and the stitcher's crossfade has two
near-identical frames to blend. Sampling is DDIM without added noise (eta 0), so replaying a
trajectory is exact. Only the shared frames' latents per step are kept between windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kinema.core.errors import InvalidArgumentError, ModelNotFoundError
from kinema.generate.sdxl import sized
from kinema.generate.video_windows import StepCallback, VideoRequest, Window, frame_noise
from kinema.models.device import placement, quiet_diffusers
from kinema.models.registry import check_pipeline


@dataclass
class _Carry:
    """The shared frames' latents after each step of the window before, by shot frame."""

    first: int
    steps: list[Any]


CONTEXT = 16
"""The frames AnimateDiff's motion modules were trained on: a longer window runs them over
FreeNoise's sliding contexts of this length (stride 4), averaged where they overlap."""


class AnimateDiffEngine:
    """SD 1.5 + an AnimateDiff motion adapter + ControlNets by kind, loaded once on one device."""

    multiple = 1
    """Any window length works: past :data:`CONTEXT` frames FreeNoise slides the motion modules'
    attention over the window."""

    def __init__(self, base: str | Path, motion_adapter: str | Path, *,
                 controlnets: Mapping[str, str | Path] | None = None, device: Any = None,
                 dtype: Any = None) -> None:
        torch, diffusers = quiet_diffusers("video restyle")
        self._torch = torch
        self.device, self.dtype = placement(device, dtype)
        check_pipeline(base, ("StableDiffusionPipeline",), "a Stable Diffusion 1.5 pipeline")
        for folder, what in [(Path(motion_adapter), "MotionAdapter"),
                             *((Path(p), "ControlNetModel") for p in (controlnets or {}).values())]:
            _check_model(folder, what)
        adapter = diffusers.MotionAdapter.from_pretrained(Path(motion_adapter), dtype=self.dtype)
        self.controls = list(controlnets or {})
        nets = [diffusers.ControlNetModel.from_pretrained(Path(p), dtype=self.dtype)
                for p in (controlnets or {}).values()]
        if nets:
            pipe = diffusers.AnimateDiffVideoToVideoControlNetPipeline.from_pretrained(
                Path(base), motion_adapter=adapter, controlnet=nets[0] if len(nets) == 1 else nets,
                dtype=self.dtype)
        else:
            pipe = diffusers.AnimateDiffVideoToVideoPipeline.from_pretrained(
                Path(base), motion_adapter=adapter, dtype=self.dtype)
        pipe.scheduler = diffusers.DDIMScheduler.from_config(
            pipe.scheduler.config, beta_schedule="linear", clip_sample=False, steps_offset=1,
            timestep_spacing="linspace")
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(self.device)
        self._carry: _Carry | None = None

    def reset(self) -> None:
        """Forget the window before: the next window starts a new shot."""
        self._carry = None

    def window(self, frames: Sequence[np.ndarray], mattes: Sequence[np.ndarray],
               controls: Mapping[str, Sequence[np.ndarray]], request: VideoRequest, window: Window,
               keep: int, on_step: StepCallback | None = None) -> list[np.ndarray]:
        """``window``'s ``frames`` (``uint8`` RGB) restyled whole, at the frames' size (the
        caller composites them through ``mattes``, which this engine does not read);
        ``controls`` are control images by kind, one per frame; ``keep``: how many of the last
        frames the next window shares (their latents per step are kept for it)."""
        torch = self._torch
        missing = [k for k in self.controls if k not in controls]
        if missing or set(controls) - set(self.controls):
            raise InvalidArgumentError(f"controls given ({', '.join(controls) or 'none'}) are not "
                                       f"the ControlNets loaded ({', '.join(self.controls) or 'none'})")
        width, height = request.size
        if width % 8 or height % 8:
            raise InvalidArgumentError(f"size {width}x{height} is not a multiple of 8",
                                       hint="Stable Diffusion works on 8-pixel latents")
        pipe, n = self.pipe, len(frames)
        if n > CONTEXT and not pipe.free_noise_enabled:
            # Enabled once for good: diffusers 0.42's disable_free_noise fails on adapters without
            # a motion mid block, such as v1-5-3's.
            pipe.enable_free_noise(context_length=CONTEXT, context_stride=4)
        pipe.scheduler.set_timesteps(request.steps, device=self.device)
        timesteps, steps = pipe.get_timesteps(request.steps, pipe.scheduler.timesteps,
                                              request.strength, self.device)
        if steps < 1:
            raise InvalidArgumentError(f"strength {request.strength} leaves no denoising step",
                                       hint="raise --strength or --steps")
        with torch.inference_mode():
            latents = self._start(frames, request, window, timesteps[:1])
        shared = self._shared(window)
        tail: list[Any] = []

        def step_end(_pipe: Any, i: int, _t: Any, kwargs: dict) -> dict:
            current = kwargs["latents"]
            if shared is not None:
                previous, weights = shared
                count = len(weights)
                w = weights.to(current)[None, None, :, None, None]
                current[:, :, :count] = w * previous.steps[i].to(current) + (1 - w) * current[:, :, :count]
            if keep:
                tail.append(current[:, :, n - keep:].detach().to("cpu", copy=True))
            if on_step is not None:
                on_step(i + 1, steps)
            return {"latents": current}

        args: dict[str, Any] = {
            "latents": latents, "prompt": request.prompt, "negative_prompt": request.negative or None,
            "num_inference_steps": request.steps, "strength": request.strength,
            "guidance_scale": request.guidance, "width": width, "height": height,
            "output_type": "np", "decode_chunk_size": 8, "callback_on_step_end": step_end}
        if self.controls:
            from PIL import Image

            images = [[Image.fromarray(sized(c, (width, height))) for c in controls[k]]
                      for k in self.controls]
            weights = [float(request.control_weights.get(k, 1.0)) for k in self.controls]
            args["conditioning_frames"] = images[0] if len(images) == 1 else images
            args["controlnet_conditioning_scale"] = weights[0] if len(weights) == 1 else weights
        with torch.inference_mode():
            video = pipe(**args).frames[0]
        self._carry = _Carry(window.stop - keep, tail) if keep else None
        size = frames[0].shape[1], frames[0].shape[0]
        return [sized(np.round(np.clip(f, 0, 1) * 255).astype(np.uint8), size) for f in video]

    def _start(self, frames: Sequence[np.ndarray], request: VideoRequest, window: Window,
               first_step: Any) -> Any:
        """The window's starting latents ``(1, 4, F, h, w)``: the frames' latents noised to the
        first timestep with each frame's own noise."""
        pipe = self.pipe
        width, height = request.size
        pixels = np.stack([sized(f, (width, height)) for f in frames]).astype(np.float32)
        video = self._torch.from_numpy(pixels / 127.5 - 1).permute(0, 3, 1, 2)
        video = video.to(self.device, pipe.vae.dtype)
        clean = self._torch.cat([pipe.vae.encode(video[i:i + 8]).latent_dist.mode()
                                 for i in range(0, len(video), 8)]) * pipe.vae.config.scaling_factor
        noise = frame_noise(request.seed, window.frames, tuple(clean.shape[1:])).to(clean)
        noisy = pipe.scheduler.add_noise(clean, noise, first_step.repeat(len(frames)))
        return noisy.permute(1, 0, 2, 3)[None].to(self.dtype)

    def _shared(self, window: Window) -> tuple[_Carry, Any] | None:
        """The window before's latents for the frames this one shares, and their weights."""
        carry = self._carry
        if carry is None or carry.first != window.start or not carry.steps:
            return None
        count = carry.steps[0].shape[2]
        return carry, self._torch.linspace(1, 0, count + 2)[1:-1]


def _check_model(folder: Path, kind: str) -> None:
    """``folder`` holds a diffusers model of class ``kind`` (its ``config.json`` says which)."""
    import json

    config = folder / "config.json"
    if not config.is_file():
        raise ModelNotFoundError(f"is not a {kind} folder (no config.json)", path=folder,
                                 hint="give a folder from kinema models pull/tiny")
    found = json.loads(config.read_text(encoding="utf-8")).get("_class_name")
    if found != kind:
        raise InvalidArgumentError(f"is a {found} folder; this needs a {kind}", path=folder,
                                   hint="give the model the engine runs (kinema models list)")
