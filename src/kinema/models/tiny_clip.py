"""A tiny random-weight CLIP for tests and offline demos: same files and layout as
``openai/clip-vit-base-patch32``, a few hundred KB, nothing downloaded.

The sizes follow transformers' own CLIP tests (hidden size 32, 2 layers, 4 heads, projection 32)
with the real checkpoint's 224-pixel input and 32-pixel patches, so preprocessing is exercised at
full size while a forward pass takes a millisecond. The byte-level BPE tokenizer knows a few dozen
words; anything else falls apart into letters and bytes. Its embeddings mean nothing, but they are
deterministic: the same picture always embeds to the same vector.
"""

from __future__ import annotations

import json
from pathlib import Path

from kinema.core.extras import require
from kinema.models.device import seeded

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
WORDS = (
    "a", "an", "the", "of", "on", "in", "with", "and", "photo", "picture", "video",
    "person", "people", "man", "woman", "child", "dog", "cat", "bird", "horse",
    "car", "bus", "truck", "bicycle", "boat", "riding", "walking", "running",
    "tree", "sky", "road", "street", "beach", "water", "red", "blue", "green", "white", "black",
)

IMAGE_SIZE = 224
PATCH_SIZE = 32
# The real checkpoint's normalisation (OpenAI CLIP's mean and std).
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_TEXT_LEN = 77


def tiny_vocab() -> tuple[dict[str, int], list[str]]:
    """The tokenizer's ``vocab`` (token -> id) and BPE ``merges`` ("left right", by rank).

    As in the real vocabulary, each of the 256 byte-level symbols exists alone and as the end of
    a word (``x</w>``), so no text is ever unknown (CLIP's unknown token is its end token, where
    the text model pools). Each word of :data:`WORDS` is built by merging left to right, with
    every prefix in the vocabulary too, so any merge order still lands on known tokens.
    """
    from tokenizers.pre_tokenizers import ByteLevel

    tokens: list[str] = [BOS, EOS]
    merges: list[str] = []
    alphabet = sorted(ByteLevel.alphabet())
    tokens += alphabet + [ch + "</w>" for ch in alphabet]
    for word in WORDS:
        prefix = word[0]
        for i, ch in enumerate(word[1:], start=1):
            right = ch + "</w>" if i == len(word) - 1 else ch
            merged = prefix + right
            merges.append(f"{prefix} {right}")
            tokens.append(merged)
            prefix = word[: i + 1]
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    # Specials last, as in the real vocabulary (49406, 49407); BPE pieces first.
    ordered = [t for t in vocab if t not in (BOS, EOS)] + [BOS, EOS]
    return {t: i for i, t in enumerate(ordered)}, list(dict.fromkeys(merges))


def tiny_config(vocab: dict[str, int]):
    """The ``CLIPConfig`` of the tiny model for ``vocab``."""
    require("transformers", "ml", feature="tiny models")
    from transformers import CLIPConfig
    text = {"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 37, "projection_dim": 32,
            "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": MAX_TEXT_LEN,
            "bos_token_id": vocab[BOS], "eos_token_id": vocab[EOS], "pad_token_id": vocab[EOS]}
    vision = {"hidden_size": 32, "intermediate_size": 37, "projection_dim": 32, "num_hidden_layers": 2,
              "num_attention_heads": 4, "image_size": IMAGE_SIZE, "patch_size": PATCH_SIZE}
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)


def build_tiny_clip(out: Path, *, seed: int = 0) -> Path:
    """Write a tiny random-weight CLIP, its BPE tokenizer (``vocab.json``/``merges.txt`` too) and
    its ``preprocessor_config.json`` to ``out``; ``CLIPModel.from_pretrained(out)`` and
    ``AutoTokenizer.from_pretrained(out)`` load it offline."""
    require("transformers", "ml", feature="tiny models")
    from transformers import CLIPModel, CLIPTokenizer
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab, merges = tiny_vocab()
    (out / "vocab.json").write_text(json.dumps(vocab, indent=1) + "\n", encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges],
                              model_max_length=MAX_TEXT_LEN)
    tokenizer.save_pretrained(out)

    with seeded(seed):
        model = CLIPModel(tiny_config(vocab)).eval()
    model.save_pretrained(out)

    # The real checkpoint's fields and values: resize the short side to 224, centre-crop 224.
    preprocessor = {
        "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE}, "do_center_crop": True,
        "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": list(IMAGE_MEAN), "image_processor_type": "CLIPImageProcessor",
        "image_std": list(IMAGE_STD), "processor_class": "CLIPProcessor", "resample": 3,
        "rescale_factor": 1 / 255, "size": {"shortest_edge": IMAGE_SIZE},
    }
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n", encoding="utf-8")
    return out
