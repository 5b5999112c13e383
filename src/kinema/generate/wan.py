"""Wan 2.1 through diffusers: text-to-video, and VACE restyles window by window.

:class:`TextToVideo` makes a clip from words (``WanPipeline``). :class:`VaceEngine` restyles
one window of a shot per call (``WanVACEPipeline``): inside the object's matte the model
generates (the mask is white there), guided by the control image of each frame where one is
given (edges, pose) or else by the source itself; outside it the source is context to keep.
An optional reference image (a restyled key, say) holds the look's identity across windows.

Consecutive windows agree through VACE's own continuation: the frames a window shares with the
one before are given as that window's output with a black mask (keep them), so the model
continues from what it made. Wan takes ``4k + 1`` frames with sides that are multiples of 16.
Each call's noise comes from a CPU generator seeded from the shot's seed and the window's first
frame, so the same request makes the same shot on any device.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kinema.core.errors import InvalidArgumentError
from kinema.generate.sdxl import sized
from kinema.generate.video_windows import StepCallback, VideoRequest, Window, frame_seed
from kinema.models.device import placement, quiet_diffusers
from kinema.models.registry import check_pipeline

FRAMES_MULTIPLE = 4
"""Wan's VAE takes 4 frames to a latent after the first: clips of 4k + 1 frames."""
SIDE_MULTIPLE = 16


def check_size(size: tuple[int, int]) -> None:
    """Wan works on sides that are multiples of 16 (8-pixel latents in 2x2 patches)."""
    if size[0] % SIDE_MULTIPLE or size[1] % SIDE_MULTIPLE:
        raise InvalidArgumentError(f"size {size[0]}x{size[1]} is not a multiple of 16",
                                   hint="Wan works on sides that are multiples of 16, e.g. 832x480")


OFFLOAD_BELOW = 20 * 2**30
"""Wan 2.1 1.3B in bf16 is about 15 GB of weights (11.4 GB of them the UMT5 text encoder): on
a GPU with less memory than this the modules wait in CPU memory and visit it in turn."""


def _pipeline(folder: str | Path, name: str, device: Any, dtype: Any) -> tuple[Any, Any, Any]:
    """torch, the diffusers pipeline ``name`` loaded from ``folder``, and its device; on a
    CUDA device under :data:`OFFLOAD_BELOW` with diffusers' model CPU offload."""
    torch, diffusers = quiet_diffusers("Wan video generation")
    folder = check_pipeline(folder, (name,), f"a Wan 2.1 {name} folder")
    device, dtype = placement(device, dtype)
    pipe = getattr(diffusers, name).from_pretrained(folder, dtype=dtype)
    pipe.vae.to(torch.float32)  # Wan's VAE is meant to run in full precision
    pipe.set_progress_bar_config(disable=True)
    if device.type == "cuda" and torch.cuda.get_device_properties(device).total_memory < OFFLOAD_BELOW:
        pipe.enable_model_cpu_offload(device=device)
        return torch, pipe, device
    return torch, pipe.to(device), device


def _steps(on_step: StepCallback | None, total: int) -> Callable[..., dict] | None:
    """A diffusers step-end callback reporting ``(step, total)``."""
    if on_step is None:
        return None

    def step_end(_pipe: Any, i: int, _t: Any, kwargs: dict) -> dict:
        on_step(i + 1, total)
        return kwargs

    return step_end


def _frames(video: Any) -> list[np.ndarray]:
    """A pipeline's ``np`` frames (0-1 floats) as ``uint8`` RGB."""
    return [np.round(np.clip(f, 0, 1) * 255).astype(np.uint8) for f in video]


@dataclass(frozen=True)
class ClipRequest:
    """A clip from words: ``frames`` (4k+1) of ``size`` (W, H), steps, guidance, seed."""

    prompt: str
    negative: str = ""
    frames: int = 81
    size: tuple[int, int] = (832, 480)
    steps: int = 50
    guidance: float = 5.0
    seed: int = 0


class TextToVideo:
    """A Wan 2.1 text-to-video pipeline loaded once on one device."""

    def __init__(self, folder: str | Path, *, device: Any = None, dtype: Any = None) -> None:
        self._torch, self.pipe, self.device = _pipeline(folder, "WanPipeline", device, dtype)
        self.dtype = self.pipe.transformer.dtype

    def generate(self, request: ClipRequest, on_step: StepCallback | None = None) -> list[np.ndarray]:
        """The clip ``request`` asks for, ``uint8`` RGB frames."""
        check_size(request.size)
        if request.frames < 1 or (request.frames - 1) % FRAMES_MULTIPLE:
            raise InvalidArgumentError(f"--frames {request.frames}: Wan makes 4k+1 frames",
                                       hint="e.g. 33, 49 or 81")
        width, height = request.size
        generator = self._torch.Generator("cpu").manual_seed(frame_seed(request.seed, 0))
        with self._torch.inference_mode():
            video = self.pipe(
                prompt=request.prompt, negative_prompt=request.negative or None, height=height,
                width=width, num_frames=request.frames, num_inference_steps=request.steps,
                guidance_scale=request.guidance, generator=generator, output_type="np",
                callback_on_step_end=_steps(on_step, request.steps)).frames[0]
        return _frames(video)


class VaceEngine:
    """A Wan 2.1 VACE pipeline loaded once, restyling a shot window by window."""

    multiple = FRAMES_MULTIPLE

    def __init__(self, folder: str | Path, *, reference: np.ndarray | None = None,
                 device: Any = None, dtype: Any = None) -> None:
        self._torch, self.pipe, self.device = _pipeline(folder, "WanVACEPipeline", device, dtype)
        self.dtype = self.pipe.transformer.dtype
        self.reference = reference
        self._before: tuple[int, list[np.ndarray]] | None = None

    def reset(self) -> None:
        """Forget the window before: the next window starts a new shot."""
        self._before = None

    def window(self, frames: Sequence[np.ndarray], mattes: Sequence[np.ndarray],
               controls: Mapping[str, Sequence[np.ndarray]], request: VideoRequest, window: Window,
               keep: int, on_step: StepCallback | None = None) -> list[np.ndarray]:
        """``window``'s ``frames`` restyled inside ``mattes`` (float 0-1, one per frame), at the
        frames' size; a control (one kind at most: one image per frame) guides the object's new
        look; the last ``keep`` frames are handed to the next window to continue from."""
        from PIL import Image

        check_size(request.size)
        if len(controls) > 1:
            raise InvalidArgumentError(f"VACE takes one control video, not {', '.join(controls)}",
                                       hint="give one of canny, pose or depth")
        shown = next(iter(controls.values()), frames)
        n = len(frames)
        if (n - 1) % FRAMES_MULTIPLE:
            raise InvalidArgumentError(f"a window of {n} frames: Wan takes 4k+1",
                                       hint="give --window 17, 33, 49 or 81")
        width, height = request.size
        video, masks = [], []
        held = self._held(window)
        for k in range(n):
            inside = mattes[k] > 0
            if k < len(held):  # made by the window before: keep it
                video.append(sized(held[k], (width, height)))
                masks.append(np.zeros((height, width), np.uint8))
                continue
            blended = np.where(inside[..., None], shown[k][..., :3], frames[k][..., :3])
            video.append(sized(blended, (width, height)))
            masks.append(sized(np.where(inside, 255, 0).astype(np.uint8), (width, height))[..., 0])
        args: dict[str, Any] = {
            "prompt": request.prompt, "negative_prompt": request.negative or None,
            "video": [Image.fromarray(v) for v in video], "mask": [Image.fromarray(m) for m in masks],
            "height": height, "width": width, "num_frames": n,
            "num_inference_steps": request.steps, "guidance_scale": request.guidance,
            "generator": self._torch.Generator("cpu").manual_seed(frame_seed(request.seed, window.start)),
            "output_type": "np", "callback_on_step_end": _steps(on_step, request.steps)}
        if self.reference is not None:
            args["reference_images"] = [Image.fromarray(sized(self.reference, (width, height)))]
        with self._torch.inference_mode():
            out = _frames(self.pipe(**args).frames[0])
        size = frames[0].shape[1], frames[0].shape[0]
        result = [sized(f, size) for f in out]
        self._before = (window.stop - keep, result[n - keep:]) if keep else None
        return result

    def _held(self, window: Window) -> list[np.ndarray]:
        """The window before's output for the frames this one starts with, if it follows it."""
        if self._before is None or self._before[0] != window.start:
            return []
        return self._before[1]
