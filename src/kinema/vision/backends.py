"""The vision backends kinema ships: classic and SAM 2 segmenters and trackers, the one-click
segmenter on the bundled models (``oneclick``; ``auto``, the default for clicks, falls back to
classic without them), Grounding DINO.

Importing this module is cheap: each factory imports its implementation when it is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kinema.core.errors import InvalidArgumentError
from kinema.models.backends import Backend, register

if TYPE_CHECKING:
    from kinema.core.frames import FrameSource
    from kinema.vision.base import ImageSegmenter, VideoTracker
    from kinema.vision.grounding import TextDetector

CLASSIC = "optical flow, colour and GrabCut; no weights"
SAM2 = "Segment Anything 2 through transformers"


def classic_segmenter(**_options: Any) -> ImageSegmenter:
    """GrabCut from clicks or a box (it takes no model)."""
    from kinema.vision.classic import GrabCutSegmenter

    return GrabCutSegmenter()


ONECLICK = "one click on the bundled models: people (MediaPipe), salient objects (U2-Net small)"
AUTO = "the default: oneclick when the bundled models are here, else classic with a warning"


def oneclick_segmenter(*, model: Any = None, **_options: Any) -> ImageSegmenter:
    """Person segmentation and salient objects from the bundled models, refined to the picture
    (:mod:`kinema.vision.oneclick`); it takes no other model."""
    if model is not None:
        raise InvalidArgumentError("the oneclick backend uses the bundled models only",
                                   hint="leave --model out, or use --backend sam2")
    from kinema.vision.oneclick import OneClickSegmenter

    return OneClickSegmenter()


def auto_segmenter(**options: Any) -> ImageSegmenter:
    """:func:`oneclick_segmenter`, or GrabCut with one ``warning:`` naming
    ``kinema models fetch-bundled`` when the bundled models or their runtimes are missing."""
    import logging

    from kinema.core.errors import MissingExtraError, ModelNotFoundError

    try:
        return oneclick_segmenter(**options)
    except (ModelNotFoundError, MissingExtraError) as exc:
        fetch = "" if "fetch-bundled" in str(exc) else "; then: kinema models fetch-bundled u2netp mediapipe"
        logging.getLogger("kinema.vision").warning(
            "clicks use the classic backend (GrabCut), not the bundled models: %s%s", exc, fetch)
        return classic_segmenter()


def classic_tracker(frames: FrameSource, *, model: Any = None, **_options: Any) -> VideoTracker:
    """The classical tracker over ``frames``; giving it a model is an error."""
    if model is not None:
        raise InvalidArgumentError("the classic backend has no model",
                                   hint="leave --model out, or use --backend sam2")
    from kinema.vision.classic import ClassicTracker

    return ClassicTracker(frames)


GUIDED = "classic guided by the bundled models"


def guided_tracker(frames: FrameSource, *, model: Any = None, **_options: Any) -> VideoTracker:
    """The classic tracker with MediaPipe person segmentation as a prior for people and U2-Net
    small to re-find a lost object (:mod:`kinema.vision.guided`); it takes no other model."""
    if model is not None:
        raise InvalidArgumentError("the guided backend uses the bundled models only",
                                   hint="leave --model out, or use --backend sam2")
    from kinema.vision.guided import GuidedTracker
    from kinema.vision.oneclick import load_models

    salient, person = load_models()
    return GuidedTracker(frames, person=person, salient=salient)


def sam2_segmenter(*, model: Any = None, device: Any = None, dtype: Any = None) -> ImageSegmenter:
    """SAM 2 on one frame; ``model`` a folder, a registry name, a loaded SAM 2 or ``None``."""
    from kinema.vision.sam2 import Sam2ImageSegmenter

    return Sam2ImageSegmenter(model, device=device, dtype=dtype)


def sam2_tracker(frames: FrameSource, *, model: Any = None, device: Any = None,
                 dtype: Any = None) -> VideoTracker:
    """SAM 2 through ``frames``; ``model`` as for :func:`sam2_segmenter`."""
    from kinema.vision.sam2 import Sam2VideoTracker

    return Sam2VideoTracker(frames, model, device=device, dtype=dtype)


def grounding_detector(*, model: Any = None, device: Any = None, dtype: Any = None) -> TextDetector:
    """Grounding DINO: boxes for words."""
    from kinema.vision.grounding import TextDetector

    return TextDetector(model, device=device, dtype=dtype)


def mediapipe_pose(*, model: Any = None, **_options: Any) -> Any:
    """BlazePose (detector + 33 landmarks) from the bundled mediapipe models, on LiteRT;
    ``model`` a folder holding both ``.tflite`` files, or ``None`` for the bundled ones."""
    from pathlib import Path

    from kinema.vision.pose import PoseEstimator

    if model is None:
        return PoseEstimator()
    folder = Path(model)
    return PoseEstimator(folder / "pose_detection.tflite", folder / "pose_landmark_full.tflite")


register(Backend("segment", "classic", CLASSIC, classic_segmenter))
register(Backend("segment", "sam2", SAM2, sam2_segmenter, extra="ml", model_task="segment-video"))
register(Backend("segment", "auto", AUTO, auto_segmenter))
register(Backend("segment", "oneclick", ONECLICK, oneclick_segmenter, extra="bundled"))
register(Backend("track", "classic", CLASSIC, classic_tracker))
register(Backend("track", "sam2", SAM2, sam2_tracker, extra="ml", model_task="segment-video"))
register(Backend("track", "guided", GUIDED, guided_tracker, extra="bundled"))
register(Backend("detect", "grounding-dino", "Grounding DINO: boxes for words", grounding_detector,
                 extra="ml", model_task="detect-text"))
register(Backend("pose", "mediapipe", "MediaPipe BlazePose: people, 33 landmarks; bundled, CPU",
                 mediapipe_pose, extra="bundled"))
