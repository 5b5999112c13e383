"""The SAM 2 backend, through transformers: ``Sam2Model`` for masks on one frame,
``Sam2VideoModel`` for masks that follow objects through a video.

Pre- and post-processing are ours (OpenCV resize, normalisation, bilinear upsampling of the
mask logits, threshold at 0); transformers' image processors are not used, so torchvision is
not needed.

One loaded SAM 2 (:func:`load_sam2`) can serve an image segmenter and a video tracker at once:
both take it in place of a folder and share its weights.

The tracker streams: frames come one at a time from the :class:`~kinema.core.frames.FrameSource`
and only the frame being worked on is held, never the video. What the model remembers is kept
bounded: the outputs of prompted frames (few) stay, the outputs of tracked frames are dropped
once they fall out of the model's window (its ``num_maskmem - 1`` spatial memories and
``max_object_pointers_in_encoder - 1`` object pointers), and the large per-frame tensors the
model never reads again (high-resolution masks, low-resolution masks of tracked frames, used
prompt inputs) are dropped at once. On a GPU the memory bank lives in CPU memory (offload).
All of it goes through :mod:`kinema.vision.sam2_session`, the adapter over transformers'
session internals.

Corrections: a prompt on a frame that was already tracked for that object is run the way SAM 2
runs it (the clicks and the object's memory together), then stored as a *conditioning* frame so
that a later propagation reuses it instead of recomputing the frame without the clicks, and the
object's tracked-frame memories within the model's memory reach around it are cleared, so the
stale memories of the wrong mask do not outweigh the correction (SAM 2's
``clear_non_cond_mem_around_input``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kinema.core.errors import InvalidArgumentError, ModelNotFoundError
from kinema.core.extras import require
from kinema.core.frames import Frame, FrameSource, Mask, check_frame
from kinema.models.device import import_torch, placement
from kinema.models.loaded import LoadedModel
from kinema.models.preprocessing import read_preprocessor_config
from kinema.models.registry import resolve
from kinema.vision.base import Box, Candidate, ImageSegmenter, Prompt, VideoTracker
from kinema.vision.sam2_session import Sam2Session, image_model

if TYPE_CHECKING:
    import torch

MASK_LOGIT = 10.0  # a boolean mask prompt becomes logits of +-10 (sigmoid ~ 1 / ~ 0)
_TRACKED_FORWARD, _TRACKED_REVERSE = 1, 2
Sam2Weights = str | os.PathLike[str] | LoadedModel | None  # a folder, a registry name, a loaded model


# --- loading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preprocessing:
    """How frames are made into model input: square resize, rescale, normalise."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rescale: float = 1 / 255


def read_preprocessing(model_dir: Path) -> Preprocessing:
    """The input size, mean and std of the SAM 2 in ``model_dir``, from its
    ``preprocessor_config.json`` if it has one, else from ``config.json`` and ImageNet's."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    size = config.get("image_size") or config.get("prompt_encoder_config", {}).get("image_size") or 1024
    pre = read_preprocessor_config(model_dir)
    given = pre.raw.get("size") or {}
    size = given.get("height") or given.get("longest_edge") or size
    norm = pre.normalisation()
    return Preprocessing(int(size), norm.mean, norm.std, norm.rescale_factor if norm.do_rescale else 1.0)


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Loading a ``sam2_video`` checkpoint into ``Sam2Model`` is expected: no warning, no bars."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_sam2(model_dir: str | os.PathLike[str] | None = None, device: Any = None, dtype: Any = None,
              *, kind: str = "video") -> LoadedModel:
    """``Sam2VideoModel`` (``kind="video"``: it serves image segmenters and video trackers alike)
    or ``Sam2Model`` (``"image"``: one frame only) from ``model_dir`` (a folder, a registry name
    or ``None`` for the default), on ``device`` in ``dtype`` (default: :func:`choose_device`,
    :func:`choose_dtype`)."""
    transformers = require("transformers", "ml", feature="SAM 2")
    path = resolve(model_dir, task="segment-video")
    dev, dt = placement(device, dtype)
    cls = transformers.Sam2Model if kind == "image" else transformers.Sam2VideoModel
    with _quiet_transformers():
        try:
            model = cls.from_pretrained(path, dtype=dt)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelNotFoundError(f"cannot load SAM 2 from this folder: {first}", path=path,
                                     hint="pull it again: kinema models pull sam2-tiny") from exc
    return LoadedModel(model.to(dev).eval(), path, dev, dt)


def _loaded(model: Sam2Weights, device: Any, dtype: Any, kind: str) -> LoadedModel:
    """``model`` itself if it is loaded (``device`` and ``dtype`` are then its own), else
    :func:`load_sam2` of it."""
    return model if isinstance(model, LoadedModel) else load_sam2(model, device, dtype, kind=kind)


# --- pre- and post-processing --------------------------------------------------------------


def to_pixels(frame: Frame, pre: Preprocessing, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``frame`` as the model's input: ``(3, S, S)``, resized (area when shrinking, bilinear
    when growing), rescaled and normalised."""
    import cv2

    torch = import_torch()
    size = pre.image_size
    rgb = frame[..., :3]
    shrink = rgb.shape[0] > size or rgb.shape[1] > size
    small = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    pixels = torch.from_numpy(small).to(device).permute(2, 0, 1).float()
    mean = torch.tensor(pre.mean, device=device).view(3, 1, 1)
    std = torch.tensor(pre.std, device=device).view(3, 1, 1)
    return ((pixels * pre.rescale - mean) / std).to(dtype)


def upsample_masks(logits: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Low-resolution mask logits ``(N, s, s)`` to boolean masks ``(N, height, width)``:
    bilinear upsampling, then logit > 0."""
    torch = import_torch()
    grown = torch.nn.functional.interpolate(logits[:, None].float(), size=(height, width),
                                            mode="bilinear", align_corners=False)
    return (grown[:, 0] > 0).cpu().numpy()


def check_prompt(prompt: Prompt, width: int, height: int, *, video: bool = False) -> Box | None:
    """Raise a one-line error for a prompt SAM 2 cannot take on a ``width`` x ``height`` frame;
    return its box clipped to the frame."""
    if prompt.text:
        raise InvalidArgumentError("SAM 2 takes clicks, boxes or masks, not words",
                                   hint="turn the words into boxes with a detector first (--text does)")
    for x, y in prompt.points:
        if not (0 <= x < width and 0 <= y < height):
            raise InvalidArgumentError(f"point ({x:g}, {y:g}) is outside the {width}x{height} frame")
    if prompt.mask is not None:
        if prompt.mask.ndim != 2 or prompt.mask.shape != (height, width):
            raise InvalidArgumentError(f"the prompt mask is {'x'.join(map(str, prompt.mask.shape[::-1]))}, "
                                       f"the frame is {width}x{height}")
        if video and (prompt.points or prompt.box is not None):
            raise InvalidArgumentError("a mask prompt cannot be mixed with clicks or a box when tracking",
                                       hint="give the mask alone, or clicks and a box")
    box = None
    if prompt.box is not None:
        x0, y0, x1, y1 = prompt.box
        box = (max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height)))
        if box[0] >= box[2] or box[1] >= box[3]:
            raise InvalidArgumentError(f"box {prompt.box} is outside the {width}x{height} frame")
    return box


def _prompt_tensors(prompt: Prompt, box: Box | None, width: int, height: int, size: int,
                    device: torch.device) -> tuple[Any, Any, Any]:
    """Points ``(1, 1, n, 2)``, labels ``(1, 1, n)`` and box ``(1, 1, 4)`` in model pixels."""
    torch = import_torch()
    sx, sy = size / width, size / height
    points = labels = boxes = None
    if prompt.points:
        points = torch.tensor([[[[x * sx, y * sy] for x, y in prompt.points]]], dtype=torch.float32,
                              device=device)
        labels = torch.tensor([[list(prompt.labels)]], dtype=torch.int32, device=device)
    if box is not None:
        boxes = torch.tensor([[[box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]]], dtype=torch.float32,
                             device=device)
    return points, labels, boxes


def _mask_tensor(mask: Mask, size: int, device: torch.device) -> torch.Tensor:
    """A boolean mask as a ``(1, 1, size, size)`` float 0/1 tensor (area-resized, then >= 0.5)."""
    torch = import_torch()
    m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)).to(device)[None, None]
    m = torch.nn.functional.interpolate(m, size=(size, size), mode="bilinear", align_corners=False,
                                        antialias=True)
    return (m >= 0.5).float()


# --- one frame ----------------------------------------------------------------------------


class Sam2ImageSegmenter(ImageSegmenter):
    """Candidate masks for clicks, a box or a mask on one frame, with ``Sam2Model``.

    The image embedding (the expensive part) is cached per frame, keyed by the frame's index
    and a hash of its pixels, so each further click on the same frame runs only the prompt
    encoder and the mask decoder. A prompt holds every click so far on that frame. ``model`` is
    a folder, a registry name, ``None`` (the default model) or a loaded SAM 2 (:func:`load_sam2`),
    whose weights it then shares.
    """

    def __init__(self, model: Sam2Weights = None, device: Any = None,
                 dtype: Any = None, *, cache_size: int = 4) -> None:
        loaded = _loaded(model, device, dtype, "image")
        self.model = loaded.model
        if type(self.model).__name__ == "Sam2VideoModel":
            self.model = image_model(self.model)
        self.model_dir, self.device, self.dtype = loaded.folder, loaded.device, loaded.dtype
        self.preprocessing = read_preprocessing(self.model_dir)
        self.cache_size = max(1, cache_size)
        self._embeddings: OrderedDict[tuple[int, tuple[int, ...], bytes], list[torch.Tensor]] = OrderedDict()

    def embed(self, frame: Frame, index: int = 0) -> list[torch.Tensor]:
        """The image embeddings of ``frame`` (frame ``index`` of its video), cached."""
        frame = check_frame(frame)
        key = (index, frame.shape, hashlib.blake2b(frame.data, digest_size=16).digest())
        found = self._embeddings.get(key)
        if found is not None:
            self._embeddings.move_to_end(key)
            return found
        torch = import_torch()
        with torch.inference_mode():
            pixels = to_pixels(frame, self.preprocessing, self.device, self.dtype)[None]
            found = self.model.get_image_embeddings(pixels)
        self._embeddings[key] = found
        while len(self._embeddings) > self.cache_size:
            self._embeddings.popitem(last=False)
        return found

    def clear_cache(self) -> None:
        """Forget the cached image embeddings."""
        self._embeddings.clear()

    def segment(self, frame: Frame, prompt: Prompt) -> list[Candidate]:
        """SAM 2's three candidate masks for ``prompt`` on ``frame``, full size, best first; the
        score is the model's predicted IoU, clipped to [0, 1]."""
        frame = check_frame(frame)
        height, width = frame.shape[:2]
        box = check_prompt(prompt, width, height)
        torch = import_torch()
        size = self.preprocessing.image_size
        embeddings = self.embed(frame, prompt.frame)
        points, labels, boxes = _prompt_tensors(prompt, box, width, height, size, self.device)
        masks = None
        if prompt.mask is not None:
            binary = _mask_tensor(prompt.mask, size, self.device)
            masks = (binary * (2 * MASK_LOGIT) - MASK_LOGIT).to(self.dtype)
        with torch.inference_mode():
            out = self.model(image_embeddings=embeddings, input_points=points, input_labels=labels,
                             input_boxes=boxes, input_masks=masks, multimask_output=True)
            scores = out.iou_scores[0, 0].float().clamp(0, 1).cpu().numpy()
            full = upsample_masks(out.pred_masks[0, 0], height, width)
        order = np.argsort(-scores, kind="stable")
        return [Candidate(full[i], float(scores[i])) for i in order]


# --- video --------------------------------------------------------------------------------


class Sam2VideoTracker(VideoTracker):
    """Objects followed through ``frames`` with ``Sam2VideoModel``, frame by frame.

    ``max_memory_frames`` caps the tracked (non-prompted) frames remembered per object; the
    default is the model's own window (``max_object_pointers_in_encoder - 1``, 15 for SAM 2), of
    which the nearest ``num_maskmem - 1`` (6) keep their spatial memory and the others only
    their object pointer, so results equal transformers' whole-video propagation. Smaller
    caps save memory at some cost in tracking. ``offload_state`` keeps the memory bank in CPU
    memory when the model runs on a GPU.

    A prompt replaces any earlier prompt for the same object on the same frame (give every
    click so far); a mask prompt stands alone. ``model`` is as for :class:`Sam2ImageSegmenter`;
    a loaded one must be a video model (``load_sam2(kind="video")``).
    """

    def __init__(self, frames: FrameSource, model: Sam2Weights = None,
                 device: Any = None, dtype: Any = None, *, max_memory_frames: int | None = None,
                 offload_state: bool = True) -> None:
        super().__init__(frames)
        self.num_frames = len(frames)
        if self.num_frames < 1:
            raise InvalidArgumentError("the video has no frames to track")
        loaded = _loaded(model, device, dtype, "video")
        if type(loaded.model).__name__ != "Sam2VideoModel":
            raise InvalidArgumentError("this SAM 2 was loaded for images only and cannot track",
                                       hint="load it with load_sam2(kind='video')")
        self.model, self.model_dir, self.device, self.dtype = loaded
        self.preprocessing = read_preprocessing(self.model_dir)
        config = self.model.config
        self.memory_reach = max(0, config.num_maskmem - 1)
        self.pointer_reach = max(self.memory_reach, config.max_object_pointers_in_encoder - 1)
        if max_memory_frames is not None and max_memory_frames < 0:
            raise InvalidArgumentError(f"max_memory_frames must be 0 or more, got {max_memory_frames}")
        self.max_memory_frames = self.pointer_reach if max_memory_frames is None else max_memory_frames
        self.session = Sam2Session(self.model, self.num_frames, device=self.device, dtype=self.dtype,
                                   offload_state=offload_state)
        self._size: tuple[int, int] | None = None  # (width, height), from the first frame read
        self._tracked: dict[int, bytearray] = {}  # object id -> per frame: 0, or tracked forward/back
        self._features_of: int | None = None  # the frame whose image features the session holds

    @property
    def object_ids(self) -> list[int]:
        """The ids of the prompted objects, in the order they were first prompted."""
        return self.session.object_ids

    def add_prompt(self, prompt: Prompt) -> dict[int, Mask]:
        """Take ``prompt`` and return every object's mask on its frame. On a frame already tracked
        for that object it is a correction: propagating from that frame on uses it."""
        index = self._check_index(prompt.frame)
        frame = self._frame(index)
        width, height = self._size  # type: ignore[misc]
        box = check_prompt(prompt, width, height, video=True)
        torch = import_torch()
        obj_id, size = prompt.object_id, self.preprocessing.image_size
        new_object = obj_id not in self._tracked
        tracked = self._tracked.setdefault(obj_id, bytearray(self.num_frames))
        correction = tracked[index] != 0
        reverse = tracked[index] == _TRACKED_REVERSE
        with torch.inference_mode():
            try:
                if prompt.mask is not None:
                    self.session.prompt(obj_id, index, mask=_mask_tensor(prompt.mask, size, self.device),
                                        correction=correction, reverse=reverse)
                else:
                    tensors = _prompt_tensors(prompt, box, width, height, size, self.device)
                    self.session.prompt(obj_id, index, points=self._point_inputs(*tensors),
                                        correction=correction, reverse=reverse)
                masks = self._step(index, frame, reverse=reverse)
            except BaseException:
                if new_object:
                    self._forget(obj_id)
                raise
            if correction:
                self.session.keep_correction(obj_id, index, max(1, self.memory_reach + 1))
        return masks

    def propagate(self, start: int, stop: int | None = None, *,
                  reverse: bool = False) -> Iterator[tuple[int, dict[int, Mask]]]:
        """Track every prompted object from ``start`` to ``stop`` (exclusive; default the end, or
        -1 going back); ``propagate(s, s + n)`` does the next ``n`` frames."""
        if not self._tracked:
            raise InvalidArgumentError("no object has been prompted yet", hint="add a prompt first")
        start = self._check_index(start)
        if stop is None:
            stop = -1 if reverse else self.num_frames
        if reverse and not -1 <= stop <= start:
            raise InvalidArgumentError(f"going back from frame {start}, stop must be in -1..{start}, "
                                       f"got {stop}")
        if not reverse and not start <= stop <= self.num_frames:
            raise InvalidArgumentError(f"going forward from frame {start}, stop must be in "
                                       f"{start}..{self.num_frames}, got {stop}")
        return self._propagate(range(start, stop, -1 if reverse else 1), reverse)

    def remove_object(self, object_id: int) -> None:
        """Stop tracking ``object_id`` and forget its prompts and memory."""
        if object_id not in self._tracked:
            raise InvalidArgumentError(f"object {object_id} was never prompted",
                                       hint=f"prompted objects: {self.object_ids or 'none'}")
        self._forget(object_id)

    def memory_footprint(self) -> dict[str, int]:
        """What the session holds now: tracked and prompted frame outputs (all objects), frames
        of pixels, frames of cached image features, and the bytes of all their tensors."""
        return self.session.footprint()

    # --- inside -------------------------------------------------------------------------

    def _propagate(self, order: range, reverse: bool) -> Iterator[tuple[int, dict[int, Mask]]]:
        torch = import_torch()
        for index in order:
            with torch.inference_mode():
                masks = self._step(index, self._frame(index), reverse=reverse)
            yield index, masks

    def _check_index(self, index: int) -> int:
        if not 0 <= index < self.num_frames:
            raise InvalidArgumentError(f"frame {index} is outside the video (0..{self.num_frames - 1})")
        return int(index)

    def _frame(self, index: int) -> Frame:
        frame = self.frames[index]
        if self._size is None:
            frame = check_frame(frame)
            self._size = (frame.shape[1], frame.shape[0])
            self.session.set_video_size(frame.shape[0], frame.shape[1])
            return frame
        return check_frame(frame, self._size)

    def _point_inputs(self, points: torch.Tensor | None, labels: torch.Tensor | None,
                      boxes: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Clicks and box as SAM 2 takes them in video: the box first, as two corner points with
        labels 2 and 3, then the clicks."""
        torch = import_torch()
        coords = [] if points is None else [points]
        kinds = [] if labels is None else [labels]
        if boxes is not None:
            coords.insert(0, boxes.view(1, 1, 2, 2))
            kinds.insert(0, torch.tensor([[[2, 3]]], dtype=torch.int32, device=boxes.device))
        return torch.cat(coords, dim=2), torch.cat(kinds, dim=2)

    def _step(self, index: int, frame: Frame, *, reverse: bool) -> dict[int, Mask]:
        """Run the model on frame ``index`` for every object; prune the memory to the window."""
        self._prune(index, reverse)
        pixels = None
        if self._features_of != index:
            pixels = to_pixels(frame, self.preprocessing, self.device, self.dtype)
        self._features_of = None
        object_ids, logits, tracked = self.session.step(index, pixels, reverse=reverse)
        self._features_of = index
        for obj_id in tracked:
            self._tracked[obj_id][index] = _TRACKED_REVERSE if reverse else _TRACKED_FORWARD
        self._prune(index, reverse)
        height, width = frame.shape[:2]
        masks = upsample_masks(logits, height, width)
        return {obj_id: masks[i] for i, obj_id in enumerate(object_ids)}

    def _prune(self, index: int, reverse: bool) -> None:
        self.session.prune(index, reverse, keep=self.max_memory_frames, memory_reach=self.memory_reach)

    def _forget(self, object_id: int) -> None:
        """Remove ``object_id`` from the session, renumbering the others."""
        self._tracked.pop(object_id, None)
        self.session.forget(object_id)
