"""A tiny random-weight Grounding DINO for tests and offline demos: same files and layout as
``IDEA-Research/grounding-dino-tiny``, a few hundred KB, nothing downloaded.

The sizes follow transformers' own Grounding DINO tests (a 4-stage Swin with ``embed_dim`` 8 and
one block per stage, a 1-layer BERT text backbone), with a longer ``max_text_len`` so real prompts
fit and a small ``size`` in ``preprocessor_config.json`` so a forward pass takes milliseconds.
"""

from __future__ import annotations

import json
from pathlib import Path

from kinema.core.extras import require
from kinema.models.device import seeded

# [PAD] [UNK] [CLS] [SEP] [MASK] first: BERT's special ids 0..4, as in bert-base-uncased's order.
VOCAB = (
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "?",
    "a", "an", "the", "of", "on", "in", "with", "and", "left", "right", "big", "small",
    "person", "people", "man", "woman", "child", "boy", "girl", "face", "hand", "head",
    "dog", "cat", "bird", "horse", "car", "bus", "truck", "bicycle", "bike", "boat",
    "tree", "sky", "road", "building", "ball", "chair", "table", "cup",
    "red", "blue", "green", "white", "black", "yellow", "##s", "##es",
)

IMAGE_SIZE = {"shortest_edge": 96, "longest_edge": 160}
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def tiny_config(vocab_size: int = len(VOCAB), *, max_text_len: int = 32, num_queries: int = 30):
    """The ``GroundingDinoConfig`` of the tiny model."""
    require("transformers", "ml", feature="tiny models")
    from transformers import GroundingDinoConfig, SwinConfig
    swin = SwinConfig(window_size=7, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                      image_size=IMAGE_SIZE["shortest_edge"], out_indices=[2, 3, 4])
    text = {"model_type": "bert", "vocab_size": vocab_size, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 2 * max_text_len,
            "pad_token_id": 0}
    return GroundingDinoConfig(
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=num_queries, num_feature_levels=4,
        encoder_n_points=2, decoder_n_points=2, backbone_config=swin, text_config=text,
        max_text_len=max_text_len,
    )


def build_tiny_grounding_dino(out: Path, *, seed: int = 0) -> Path:
    """Write a tiny random-weight Grounding DINO, its BERT tokenizer and its
    ``preprocessor_config.json`` to ``out``; ``from_pretrained(out)`` loads it offline."""
    require("transformers", "ml", feature="tiny models")
    from transformers import BertTokenizer, GroundingDinoForObjectDetection
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(VOCAB)}, do_lower_case=True)
    tokenizer.save_pretrained(out)

    with seeded(seed):
        model = GroundingDinoForObjectDetection(tiny_config()).eval()
    model.save_pretrained(out)

    # Same fields and format as the real checkpoint's file, which is what our loader reads.
    preprocessor = {
        "do_normalize": True, "do_pad": True, "do_rescale": True, "do_resize": True,
        "format": "coco_detection", "image_mean": list(IMAGE_MEAN),
        "image_processor_type": "GroundingDinoImageProcessor", "image_std": list(IMAGE_STD),
        "processor_class": "GroundingDinoProcessor", "resample": 2, "rescale_factor": 1 / 255,
        "size": dict(IMAGE_SIZE),
    }
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n", encoding="utf-8")
    return out
