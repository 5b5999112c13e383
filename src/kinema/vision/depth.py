"""Relative depth of a frame: Depth Anything V2 through transformers.

:class:`DepthEstimator` loads a depth-estimation model folder (``depth-anything-v2-small``
from the registry, or a tiny one from ``kinema models tiny depth``) and gives each frame's
relative depth at the frame's size. Depth Anything predicts relative inverse depth: larger
values are nearer, which is the convention depth ControlNets were trained on (near is bright).
Frames in, ``float32 (H, W)`` maps out; no file I/O.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from kinema.core.extras import require
from kinema.core.frames import check_frame
from kinema.models.device import placement


class DepthEstimator:
    """A depth-estimation model loaded once on one device."""

    def __init__(self, folder: str | os.PathLike[str], *, device: Any = None, dtype: Any = None) -> None:
        self._torch = require("torch", "ml", feature="depth estimation")
        transformers = require("transformers", "ml", feature="depth estimation")
        self.path = Path(folder)
        self.device, self.dtype = placement(device, dtype)
        self._processor = transformers.AutoImageProcessor.from_pretrained(self.path)
        model = transformers.AutoModelForDepthEstimation.from_pretrained(self.path, dtype=self.dtype)
        self._model = model.to(self.device).eval()

    def depth(self, frame: np.ndarray) -> np.ndarray:
        """``frame``'s relative inverse depth (larger is nearer), ``float32 (H, W)``."""
        frame = check_frame(frame, alpha=False)
        height, width = frame.shape[:2]
        inputs = self._processor(images=frame, return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, self.dtype)
        with self._torch.inference_mode():
            outputs = self._model(pixel_values=pixels)
        result = self._processor.post_process_depth_estimation(outputs, target_sizes=[(height, width)])
        return result[0]["predicted_depth"].float().cpu().numpy().astype(np.float32)
