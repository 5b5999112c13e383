"""A tiny random-weight Depth Anything V2 for tests and offline smoke runs.

Same files and layout as ``depth-anything/Depth-Anything-V2-Small-hf`` (a ``config.json`` with
a DINOv2 backbone and the DPT-style neck and head, ``model.safetensors``, the
``preprocessor_config.json`` of the real checkpoint), with a backbone of width 32 and four
layers and a 70-pixel input (5 x 5 patches of 14) instead of 518, so a frame takes a few
milliseconds on a CPU. Its depth means nothing, but the same frame always gives the same map.
"""

from __future__ import annotations

import json
from pathlib import Path

from kinema.core.extras import require
from kinema.models.device import seeded

IMAGE_SIZE = 70
PATCH_SIZE = 14
# The real checkpoint's normalisation (ImageNet's mean and std).
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def tiny_config():
    """The ``DepthAnythingConfig`` of the tiny model."""
    require("transformers", "ml", feature="tiny models")
    from transformers import DepthAnythingConfig, Dinov2Config

    backbone = Dinov2Config(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, hidden_size=32,
                            num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    return DepthAnythingConfig(backbone_config=backbone, patch_size=PATCH_SIZE,
                               reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                               fusion_hidden_size=16, head_hidden_size=8,
                               depth_estimation_type="relative")


def build_tiny_depth(out: Path, *, seed: int = 0) -> Path:
    """Write a tiny random-weight Depth Anything V2 and its ``preprocessor_config.json`` to
    ``out``; ``AutoModelForDepthEstimation.from_pretrained(out)`` loads it offline."""
    require("transformers", "ml", feature="tiny models")
    from transformers import DepthAnythingForDepthEstimation

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with seeded(seed):
        model = DepthAnythingForDepthEstimation(tiny_config()).eval()
    model.save_pretrained(out)
    # The real checkpoint's fields and values, at the tiny input size.
    preprocessor = {
        "do_normalize": True, "do_pad": False, "do_rescale": True, "do_resize": True,
        "ensure_multiple_of": PATCH_SIZE, "image_mean": list(IMAGE_MEAN),
        "image_processor_type": "DPTImageProcessor", "image_std": list(IMAGE_STD),
        "keep_aspect_ratio": True, "resample": 3, "rescale_factor": 1 / 255,
        "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    }
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n",
                                                  encoding="utf-8")
    return out
