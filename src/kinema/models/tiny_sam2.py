"""A tiny random-weight SAM 2 for tests and offline demos: same files and layout as
``facebook/sam2.1-hiera-tiny``, about 4 MB, nothing downloaded.

One ``config.json`` (``model_type`` ``sam2_video``) and one ``model.safetensors`` serve both
``Sam2VideoModel`` and ``Sam2Model`` (which ignores the memory weights), as the real
checkpoint does. The architecture is SAM 2's (Hiera with 4 stages and query pooling, FPN neck,
prompt encoder, two-way mask decoder, memory encoder and memory attention) at 64x64 pixels with
few channels. The widths keep the ratios the transformers code relies on: memory features are
64 wide (its memory attention hard-codes that) and narrower than the 128-wide image features
(object pointers are split into 64-wide tokens). ``preprocessor_config.json`` has the real
file's fields; our loader reads its size, mean and std.
"""

from __future__ import annotations

import json
from pathlib import Path

from kinema.core.extras import require
from kinema.models.device import import_torch, seeded

IMAGE_SIZE = 64
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def tiny_config(image_size: int = IMAGE_SIZE):
    """The ``Sam2VideoConfig`` of the tiny model (``image_size`` a multiple of 32)."""
    require("transformers", "ml", feature="tiny models")
    from transformers import Sam2HieraDetConfig, Sam2VideoConfig, Sam2VisionConfig
    if image_size % 32:
        raise ValueError(f"image_size must be a multiple of 32, got {image_size}")
    dim, hidden, mem = 8, 128, 64
    s4 = image_size // 4  # side of the first (highest-resolution) feature map, stride 4
    backbone = Sam2HieraDetConfig(
        hidden_size=dim, num_attention_heads=1, image_size=[image_size, image_size],
        blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[dim, 2 * dim, 4 * dim, 8 * dim],
        num_attention_heads_per_stage=[1, 1, 1, 1], window_size_per_stage=[4, 4, 4, 2],
        # global attention may not sit on a query-pooling block (the first of a stage)
        global_attention_blocks=[3], window_positional_embedding_background_size=[2, 2])
    vision = Sam2VisionConfig(
        backbone_config=backbone, backbone_channel_list=[8 * dim, 4 * dim, 2 * dim, dim],
        backbone_feature_sizes=[[s4, s4], [s4 // 2, s4 // 2], [s4 // 4, s4 // 4]],
        fpn_hidden_size=hidden)
    return Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config={"hidden_size": hidden, "image_size": image_size, "patch_size": 16,
                               "mask_input_channels": 8},
        mask_decoder_config={"hidden_size": hidden, "mlp_dim": 64, "num_hidden_layers": 2,
                             "num_attention_heads": 4, "iou_head_hidden_dim": 32},
        image_size=image_size, num_maskmem=7, max_object_pointers_in_encoder=16,
        memory_attention_hidden_size=hidden, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_attention_rope_feat_sizes=[s4 // 4, s4 // 4],
        memory_encoder_hidden_size=hidden, memory_encoder_output_channels=mem,
        mask_downsampler_embed_dim=hidden, memory_fuser_embed_dim=hidden,
        memory_fuser_intermediate_dim=hidden,
    )


def build_tiny_sam2(out: Path, *, image_size: int = IMAGE_SIZE, seed: int = 0) -> Path:
    """Write a tiny random-weight SAM 2 and its ``preprocessor_config.json`` to ``out``;
    ``Sam2Model.from_pretrained(out)`` and ``Sam2VideoModel.from_pretrained(out)`` load it offline."""
    torch = import_torch()
    require("transformers", "ml", feature="tiny models")
    from transformers import Sam2VideoModel
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with seeded(seed):
        model = Sam2VideoModel(tiny_config(image_size)).eval()
        # The memory's learned embeddings start at zero; random ones make the memory path
        # (and a correction's effect on it) visible in tests.
        with torch.no_grad():
            for param in (model.no_memory_embedding, model.memory_temporal_positional_encoding,
                          model.no_object_pointer, model.no_memory_positional_encoding):
                param.normal_(std=0.02)
    model.save_pretrained(out)

    # Same fields and format as the real checkpoint's file, which is what our loader reads.
    preprocessor = {
        "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": list(IMAGE_MEAN), "image_processor_type": "Sam2ImageProcessorFast",
        "image_std": list(IMAGE_STD), "mask_size": {"height": image_size // 4, "width": image_size // 4},
        "processor_class": "Sam2VideoProcessor", "resample": 2, "rescale_factor": 1 / 255,
        "size": {"height": image_size, "width": image_size},
    }
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n", encoding="utf-8")
    return out
