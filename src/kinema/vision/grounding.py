"""Boxes for words: Grounding DINO finds "person" or "the red car" in a frame.

Preprocessing and post-processing are kinema's own (the Grounding DINO processor's fast path needs
torchvision) and follow ``GroundingDinoImageProcessor`` / ``GroundingDinoProcessor``: the frame is
resized keeping its aspect (``size`` from the model's ``preprocessor_config.json``), rescaled and
normalised; the text is lower-cased, its phrases separated by ``.``; each query's score is the
highest sigmoid over the text tokens, and its label the tokens above ``text_threshold``.
:func:`boxes_to_prompts` turns detections into box prompts for the segmenters and trackers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from kinema.core.errors import InvalidArgumentError, ModelNotFoundError
from kinema.core.extras import require
from kinema.models.device import import_torch, placement
from kinema.models.preprocessing import Normalisation, read_preprocessor_config
from kinema.models.registry import resolve
from kinema.vision.base import Box, Prompt

if TYPE_CHECKING:
    import torch

# What transformers' GroundingDinoImageProcessor uses when the config leaves a field out.
DEFAULT_SIZE = {"shortest_edge": 800, "longest_edge": 1333}
# Tokens that only structure the prompt; the original Grounding DINO treats these as special too.
SEPARATOR_TOKENS = (".", "?")


@dataclass(frozen=True)
class Detection:
    """One box found for the text: ``box`` is ``(x0, y0, x1, y1)`` in frame pixels, ``score`` in
    [0, 1], ``label`` the words of the text it matched."""

    box: Box
    score: float
    label: str


@dataclass(frozen=True, kw_only=True)
class Preprocessing(Normalisation):
    """How a frame becomes ``pixel_values``: the fields of ``preprocessor_config.json`` we use."""

    size: Mapping[str, int]

    @classmethod
    def from_model_dir(cls, model_dir: str | os.PathLike[str]) -> Preprocessing:
        """Read ``model_dir/preprocessor_config.json``; transformers' defaults where it is absent."""
        config = read_preprocessor_config(model_dir)
        if not config.exists:
            return cls(size=dict(DEFAULT_SIZE))
        size = config.raw.get("size", DEFAULT_SIZE)
        if isinstance(size, int):  # old configs: "size": 800, "max_size": 1333
            size = {"shortest_edge": size,
                    "longest_edge": config.raw.get("max_size", DEFAULT_SIZE["longest_edge"])}
        prep = cls(size={k: int(v) for k, v in size.items() if v is not None},
                   **asdict(config.normalisation()))
        resized_shape(1, 1, prep.size)  # fail now, not on the first frame, if the size is unusable
        return prep


def resized_shape(height: int, width: int, size: Mapping[str, int]) -> tuple[int, int]:
    """The ``(height, width)`` a ``height`` x ``width`` frame is resized to, as transformers'
    Grounding DINO image processor computes it for ``size`` (but never below 1 pixel)."""
    out_h, out_w = _resized_shape(height, width, size)
    return max(1, out_h), max(1, out_w)


def _resized_shape(height: int, width: int, size: Mapping[str, int]) -> tuple[int, int]:
    if size.get("shortest_edge") and size.get("longest_edge"):
        short, longest = size["shortest_edge"], size["longest_edge"]
        lo, hi = float(min(height, width)), float(max(height, width))
        raw = None
        if hi / lo * short > longest:
            raw = longest * lo / hi
            short = round(raw)
        if (height <= width and height == short) or (width <= height and width == short):
            return height, width
        if width < height:
            return int((raw if raw is not None else short) * height / width), short
        return short, int((raw if raw is not None else short) * width / height)
    if size.get("max_height") and size.get("max_width"):
        scale = min(size["max_height"] / height, size["max_width"] / width)
        return int(height * scale), int(width * scale)
    if size.get("height") and size.get("width"):
        return size["height"], size["width"]
    raise InvalidArgumentError(f"unsupported image size in the preprocessor config: {dict(size)}",
                               hint="use shortest_edge+longest_edge, max_height+max_width or height+width")


def check_frame(frame: object) -> np.ndarray:
    """``frame`` if it is an ``(H, W, 3)`` uint8 RGB array, else a one-line error."""
    if not isinstance(frame, np.ndarray):
        raise InvalidArgumentError(f"a frame is a numpy array, got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise InvalidArgumentError(f"a frame is an (H, W, 3) RGB array, got shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise InvalidArgumentError(f"a frame is uint8, got {frame.dtype}")
    return frame


def preprocess_frame(frame: np.ndarray, prep: Preprocessing, *, device: torch.device | str = "cpu",
                     dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """``pixel_values`` ``(1, 3, h, w)`` and ``pixel_mask`` ``(1, h, w)`` for one RGB frame."""
    torch = import_torch()
    frame = check_frame(frame)
    height, width = frame.shape[:2]
    out_h, out_w = resized_shape(height, width, prep.size)
    device = torch.device(device)
    # Antialiased bilinear: torch's port of PIL's filter, which the reference processor uses.
    # MPS lacks it, so resize there on the CPU.
    work = device if device.type == "cuda" else torch.device("cpu")
    pixels = torch.from_numpy(np.ascontiguousarray(frame)).to(work).permute(2, 0, 1)[None].float()
    if (out_h, out_w) != (height, width):
        pixels = torch.nn.functional.interpolate(pixels, size=(out_h, out_w), mode="bilinear",
                                                 align_corners=False, antialias=True)
    if prep.do_rescale:
        pixels = pixels * prep.rescale_factor
    if prep.do_normalize:
        mean = torch.tensor(prep.mean, device=work).view(1, 3, 1, 1)
        std = torch.tensor(prep.std, device=work).view(1, 3, 1, 1)
        pixels = (pixels - mean) / std
    # One frame at a time: nothing is padded, every pixel is valid.
    mask = torch.ones((1, out_h, out_w), dtype=torch.long, device=device)
    return {"pixel_values": pixels.to(device=device, dtype=dtype or torch.float32), "pixel_mask": mask}


def normalize_text(text: str | Sequence[str]) -> str:
    """The prompt as Grounding DINO expects it: lower case, phrases separated by ``". "``,
    ending in ``"."`` (``["A cat", "dog"]`` and ``"a cat. dog"`` both give ``"a cat. dog."``)."""
    if isinstance(text, str):
        parts = [text]
    elif isinstance(text, Sequence) and all(isinstance(t, str) for t in text):
        parts = list(text)
    else:
        raise InvalidArgumentError(f"the text is a string or a list of strings, got {type(text).__name__}")
    phrases = [" ".join(p.split()) for part in parts for p in part.lower().split(".")]
    phrases = [p for p in phrases if p]
    if not phrases:
        raise InvalidArgumentError("the text is empty", hint='give words to look for, e.g. "person. red car"')
    return ". ".join(phrases) + "."


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))  # stable, and exactly 0 for the -inf padding columns


def cxcywh_to_xyxy(boxes: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """Normalised ``(cx, cy, w, h)`` boxes ``(N, 4)`` as ``(x0, y0, x1, y1)`` pixels of a
    ``(height, width)`` frame (not clipped)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    height, width = frame_size
    cx, cy, w, h = boxes.T
    corners = np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=1)
    return corners * np.array([width, height, width, height], np.float64)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` xyxy boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def postprocess_grounding(logits: np.ndarray, boxes: np.ndarray, input_ids: Sequence[int],
                          frame_size: tuple[int, int], *, decode: Callable[[list[int]], str],
                          skip_ids: Collection[int] = (), box_threshold: float = 0.35,
                          text_threshold: float = 0.25, max_boxes: int = 20,
                          nms_iou: float | None = None) -> list[Detection]:
    """Detections from one image's raw outputs, best score first.

    ``logits`` ``(queries, max_text_len)`` and ``boxes`` ``(queries, 4)`` normalised cxcywh are
    the model's; ``input_ids`` the prompt's tokens; ``frame_size`` ``(height, width)``.
    As ``GroundingDinoProcessor.post_process_grounded_object_detection``: a query is kept when its
    best token probability is above ``box_threshold``; its label decodes the tokens above
    ``text_threshold`` (never the first or the last logit column). Unlike it: ``skip_ids``
    (special and separator tokens) are left out of labels; a query with no token above
    ``text_threshold`` is labelled with the phrase of its best token; boxes are clipped to the
    frame and those left empty dropped; ``nms_iou`` optionally drops boxes overlapping a better one
    of the same label by more than that IoU; at most ``max_boxes`` are returned.
    """
    if max_boxes < 1:
        raise InvalidArgumentError(f"max_boxes is at least 1, got {max_boxes}")
    logits = np.asarray(logits, np.float64)
    if logits.ndim != 2 or np.shape(boxes) != (logits.shape[0], 4):
        raise InvalidArgumentError(f"logits are (queries, tokens) and boxes (queries, 4), got shapes "
                                   f"{logits.shape} and {np.shape(boxes)}")
    ids = [int(i) for i in input_ids]
    height, width = frame_size
    probs = _sigmoid(logits)
    scores = probs.max(axis=1)
    xyxy = cxcywh_to_xyxy(boxes, frame_size)
    xyxy = np.clip(xyxy, 0.0, np.array([width, height, width, height], np.float64))

    # Columns a label may use: real tokens, not the first ([CLS]) nor the last logit column
    # (transformers' get_phrases_from_posmap), and not special or separator tokens.
    wordish = np.zeros(probs.shape[1], bool)
    wordish[1:min(len(ids), probs.shape[1] - 1)] = True
    wordish[[i for i in range(min(len(ids), probs.shape[1])) if ids[i] in skip_ids]] = False

    found: list[Detection] = []
    for q in np.flatnonzero(scores > box_threshold):
        x0, y0, x1, y1 = (float(v) for v in xyxy[q])
        if not (x0 < x1 and y0 < y1):
            continue
        chosen = np.flatnonzero((probs[q] > text_threshold) & wordish)
        if chosen.size == 0 and wordish.any():
            chosen = _phrase_around(int(np.argmax(np.where(wordish, probs[q], -1.0))), wordish)
        label = decode([ids[i] for i in chosen]).strip() if chosen.size else ""
        found.append(Detection((x0, y0, x1, y1), float(scores[q]), label))
    found.sort(key=lambda d: -d.score)
    if nms_iou is not None:
        found = _nms(found, nms_iou)
    return found[:max_boxes]


def _phrase_around(index: int, wordish: np.ndarray) -> np.ndarray:
    """The run of word tokens (between separators) that holds ``index``."""
    start, stop = index, index + 1
    while start > 0 and wordish[start - 1]:
        start -= 1
    while stop < wordish.size and wordish[stop]:
        stop += 1
    return np.arange(start, stop)


def _nms(detections: list[Detection], iou: float) -> list[Detection]:
    kept: list[Detection] = []
    for det in detections:  # already best first
        same = [k.box for k in kept if k.label == det.label]
        if not same or box_iou(np.array([det.box]), np.array(same)).max() <= iou:
            kept.append(det)
    return kept


def boxes_to_prompts(detections: Sequence[Detection], frame_index: int,
                     first_object_id: int = 1) -> list[Prompt]:
    """Box prompts on frame ``frame_index``, best score first, with object ids counting up from
    ``first_object_id``; each keeps its label as the prompt's text."""
    if frame_index < 0:
        raise InvalidArgumentError(f"frame indices start at 0, got {frame_index}")
    last = first_object_id + len(detections) - 1
    if first_object_id < 1 or last > 255:
        raise InvalidArgumentError(f"object ids are 1..255, these detections would use "
                                   f"{first_object_id}..{last}",
                                   hint="lower max_boxes or start from a smaller object id")
    ordered = sorted(detections, key=lambda d: -d.score)  # stable: ties keep their order
    return [Prompt(frame=frame_index, object_id=first_object_id + i, box=tuple(map(float, d.box)),
                   text=d.label or None)
            for i, d in enumerate(ordered)]


class TextDetector:
    """Grounding DINO on one frame at a time: ``detect(frame, "person. red car")``.

    ``model_dir`` is a model folder or registry name (default: the ``detect-text`` default);
    ``device`` and ``dtype`` as :func:`kinema.models.device.choose_device` / ``choose_dtype``.
    """

    def __init__(self, model_dir: str | os.PathLike[str] | None = None, device: str | None = None,
                 dtype: str | None = None) -> None:
        torch = import_torch()
        require("transformers", "ml", feature="text detection")
        from transformers import AutoTokenizer, GroundingDinoForObjectDetection
        self.model_dir = resolve(model_dir, task="detect-text")
        self.device, self.dtype = placement(device, dtype)
        self.preprocessing = Preprocessing.from_model_dir(self.model_dir)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
            model = GroundingDinoForObjectDetection.from_pretrained(self.model_dir, dtype=self.dtype)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelNotFoundError(f"cannot load Grounding DINO: {first}", path=self.model_dir,
                                     hint="pull it again: kinema models pull grounding-dino-tiny") from exc
        self.model = model.to(self.device).eval()
        self.max_text_len = int(self.model.config.max_text_len)
        vocab = self.tokenizer.get_vocab()
        separators = {vocab[t] for t in SEPARATOR_TOKENS if t in vocab}
        self.skip_ids = frozenset(self.tokenizer.all_special_ids) | separators
        self._encoded: tuple[str, dict[str, torch.Tensor]] | None = None
        self._torch = torch

    def encode(self, text: str | Sequence[str]) -> dict[str, torch.Tensor]:
        """``input_ids``, ``token_type_ids`` and ``attention_mask`` (batch of 1, on the model's
        device) for the normalised ``text``."""
        prompt = normalize_text(text)
        if self._encoded is not None and self._encoded[0] == prompt:
            return self._encoded[1]
        enc = self.tokenizer(prompt, return_tensors="pt", return_token_type_ids=True)
        length = int(enc["input_ids"].shape[1])
        if length > self.max_text_len:
            raise InvalidArgumentError(f"the text is {length} tokens, this model takes at most "
                                       f"{self.max_text_len}", hint="use fewer or shorter phrases")
        batch = {k: enc[k].to(self.device) for k in ("input_ids", "token_type_ids", "attention_mask")}
        self._encoded = (prompt, batch)
        return batch

    def detect(self, frame: np.ndarray, text: str | Sequence[str], *, box_threshold: float = 0.35,
               text_threshold: float = 0.25, max_boxes: int = 20,
               nms_iou: float | None = None) -> list[Detection]:
        """Boxes for ``text`` (phrases separated by ``.``) on an ``(H, W, 3)`` uint8 RGB frame,
        best score first; see :func:`postprocess_grounding` for the thresholds."""
        frame = check_frame(frame)
        if max_boxes < 1:
            raise InvalidArgumentError(f"max_boxes is at least 1, got {max_boxes}")
        text_inputs = self.encode(text)
        image_inputs = preprocess_frame(frame, self.preprocessing, device=self.device, dtype=self.dtype)
        with self._torch.inference_mode():
            out = self.model(**image_inputs, **text_inputs)
        return postprocess_grounding(
            out.logits[0].float().cpu().numpy(), out.pred_boxes[0].float().cpu().numpy(),
            text_inputs["input_ids"][0].tolist(), frame.shape[:2],
            decode=lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True),
            skip_ids=self.skip_ids, box_threshold=box_threshold, text_threshold=text_threshold,
            max_boxes=max_boxes, nms_iou=nms_iou)
