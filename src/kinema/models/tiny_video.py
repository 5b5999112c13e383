"""Tiny random-weight video diffusion models for tests and offline smoke runs: AnimateDiff
(an SD1.5 pipeline, a motion adapter, SD1.5 ControlNets) and Wan 2.1 (text-to-video, VACE).

Each folder has its real checkpoint's layout, so the code that loads real weights loads these
unchanged:

- ``sd15-base``: a ``StableDiffusionPipeline`` folder like ``stable-diffusion-v1-5`` (``unet/``,
  ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``, ``feature_extractor/``; no safety
  checker, as kinema never pulls it);
- ``animatediff-v1-5-3``: a ``MotionAdapter`` folder (``config.json`` and weights), with the real
  adapter's ``use_motion_mid_block=False`` and ``motion_max_seq_length=32``;
- ``controlnet-openpose-sd15`` and ``controlnet-canny-sd15``: ``ControlNetModel`` folders;
- ``wan2.1-t2v-1.3b`` / ``wan2.1-vace-1.3b``: ``WanPipeline`` / ``WanVACEPipeline`` folders (UMT5
  text encoder, T5 tokenizer, ``AutoencoderKLWan``, the transformer, a UniPC flow scheduler).

AnimateDiff is three folders, as on the hub, put together at load time::

    AnimateDiffVideoToVideoControlNetPipeline.from_pretrained(
        sd15, motion_adapter=MotionAdapter.from_pretrained(adapter),
        controlnet=ControlNetModel.from_pretrained(controlnet))

:func:`build_tiny_animatediff` writes all of them under one folder, each in a sub-folder named
after its registry model, so ``KINEMA_MODELS=DIR`` resolves them by name.

The sizes follow diffusers' fast tests (text width 32, two UNet levels of 32 and 64 channels;
Wan's two-head transformer and three-channel VAE) with one difference for SD1.5: the VAE has
four levels, so frames are eight times their latents, as with the real VAE. Weights a fresh
model starts at zero are random here, so tests can see a condition act: a ControlNet's zero
convolutions (and its condition embedding's output). diffusers 0.42 starts the motion modules
and VACE blocks random already; their builders randomise any zero weights too, should a version
zero them as the original code does. The tokenizers
are made in code: SD1.5 uses :mod:`kinema.models.tiny_clip`'s byte-level BPE, Wan a small
Unigram T5 tokenizer (:func:`tiny_t5_tokenizer`). Every builder is seeded: the same folder,
byte for byte in its weights, every time. The pictures are noise.
"""

from __future__ import annotations

import json
from pathlib import Path

from kinema.core.extras import require
from kinema.models.device import import_torch, seeded
from kinema.models.tiny_clip import EOS, MAX_TEXT_LEN, WORDS, tiny_vocab
from kinema.models.tiny_sdxl import write_card

# What kinema reads as each tiny model's card (``kinema.json``), like the registry's cards.
SD15_CARD = {"steps": 2, "guidance": 5.0, "scheduler": "pndm", "size": [32, 32]}
ANIMATEDIFF_CARD = {"steps": 2, "guidance": 5.0, "scheduler": "ddim", "beta_schedule": "linear",
                    "size": [32, 32], "fps": 8, "frames": 8}
WAN_CARD = {"steps": 2, "guidance": 5.0, "scheduler": "unipc", "flow_shift": 3.0, "size": [32, 32],
            "fps": 16, "frames": 9}
# Sub-folders of build_tiny_animatediff: the registry names of the models they stand for.
SD15, ADAPTER, OPENPOSE, CANNY = ("sd15-base", "animatediff-v1-5-3", "controlnet-openpose-sd15",
                                  "controlnet-canny-sd15")

TEXT_WIDTH = 32
_BLOCKS = (16, 32)
_UNET = {
    "sample_size": 4, "in_channels": 4, "out_channels": 4, "layers_per_block": 1,
    "block_out_channels": _BLOCKS, "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"), "cross_attention_dim": TEXT_WIDTH,
    "attention_head_dim": (2, 4), "norm_num_groups": 4,
}
# Wan: T5 pieces for the words tiny_clip knows, then single characters for everything else.
_T5_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"
WAN_TEXT_WIDTH = 32
_WAN_TRANSFORMER = {
    "patch_size": (1, 2, 2), "num_attention_heads": 2, "attention_head_dim": 12, "in_channels": 16,
    "out_channels": 16, "text_dim": WAN_TEXT_WIDTH, "freq_dim": 256, "ffn_dim": 32, "num_layers": 2,
    "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "rope_max_seq_len": 32,
}


def _randomise_zeros(module, std: float = 0.05) -> None:
    """Draw every all-zero weight matrix or kernel of ``module`` from N(0, std) (zero-initialised
    outputs would make a ControlNet, or a motion module or VACE block that starts at zero,
    change nothing)."""
    torch = import_torch()
    with torch.no_grad():
        for param in module.parameters():
            if param.ndim >= 2 and not param.any():
                param.normal_(0.0, std)


# -- AnimateDiff: SD1.5, the motion adapter, SD1.5 ControlNets ---------------------------------


def build_tiny_sd15(out: Path, *, seed: int = 0) -> Path:
    """Write a tiny random-weight SD1.5 pipeline folder to ``out``;
    ``StableDiffusionPipeline.from_pretrained(out)`` and the AnimateDiff pipelines (with a motion
    adapter) load it offline."""
    require("diffusers", "ml", feature="tiny SD1.5")
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab, merges = tiny_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges],
                              model_max_length=MAX_TEXT_LEN)
    text = CLIPTextConfig(vocab_size=len(vocab), hidden_size=TEXT_WIDTH, intermediate_size=37,
                          num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=MAX_TEXT_LEN,
                          hidden_act="quick_gelu", bos_token_id=vocab["<|startoftext|>"],
                          eos_token_id=vocab[EOS], pad_token_id=vocab[EOS])
    with seeded(seed):
        unet = UNet2DConditionModel(**_UNET)
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, sample_size=32,
                            block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4,
                            down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4)
        text_encoder = CLIPTextModel(text)
    # SD1.5's own scheduler_config.json (the video engines choose theirs from the card).
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)
    # SD1.5's feature_extractor (the image processor IP-Adapters use), at its real settings.
    features = CLIPImageProcessor(crop_size={"height": 224, "width": 224}, size={"shortest_edge": 224})
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=features,
                                   requires_safety_checker=False)
    out = Path(out)
    pipe.save_pretrained(out)
    # Without torchvision transformers saves the processor as "CLIPImageProcessorPil"; name it
    # as the real folder does (loading it gives whichever backend is installed).
    index = out / "model_index.json"
    entries = json.loads(index.read_text(encoding="utf-8"))
    entries["feature_extractor"] = ["transformers", "CLIPImageProcessor"]
    index.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    write_card(out, SD15_CARD)
    return out


def build_tiny_motion_adapter(out: Path, *, seed: int = 1) -> Path:
    """Write a tiny random-weight AnimateDiff ``MotionAdapter`` for :func:`build_tiny_sd15`'s
    UNet to ``out``; ``MotionAdapter.from_pretrained(out)`` loads it."""
    require("diffusers", "ml", feature="tiny AnimateDiff")
    from diffusers import MotionAdapter

    with seeded(seed):
        adapter = MotionAdapter(block_out_channels=_BLOCKS, motion_layers_per_block=1,
                                motion_norm_num_groups=4, motion_num_attention_heads=2,
                                motion_max_seq_length=32, use_motion_mid_block=False)
        _randomise_zeros(adapter)
    out = Path(out)
    adapter.save_pretrained(out)
    write_card(out, ANIMATEDIFF_CARD)
    return out


def build_tiny_controlnet_sd15(out: Path, *, seed: int = 2) -> Path:
    """Write a tiny random-weight SD1.5 ControlNet matching :func:`build_tiny_sd15`'s UNet;
    every weight is random (a fresh ControlNet's zero output convolutions would change nothing)."""
    require("diffusers", "ml", feature="tiny ControlNet")
    from diffusers import ControlNetModel

    config = {k: v for k, v in _UNET.items() if k not in ("sample_size", "out_channels", "up_block_types")}
    with seeded(seed):
        net = ControlNetModel(**config, conditioning_embedding_out_channels=(8, 8, 16, 16))
        _randomise_zeros(net)
    out = Path(out)
    net.save_pretrained(out)
    return out


def build_tiny_animatediff(out: Path, *, seed: int = 0) -> Path:
    """Write the tiny AnimateDiff set under ``out``: ``sd15-base/``, ``animatediff-v1-5-3/``,
    ``controlnet-openpose-sd15/`` and ``controlnet-canny-sd15/`` (the registry's names, so with
    ``KINEMA_MODELS=out`` each resolves by name); returns ``out``."""
    out = Path(out)
    build_tiny_sd15(out / SD15, seed=seed)
    build_tiny_motion_adapter(out / ADAPTER, seed=seed + 1)
    build_tiny_controlnet_sd15(out / OPENPOSE, seed=seed + 2)
    build_tiny_controlnet_sd15(out / CANNY, seed=seed + 3)
    return out


# -- Wan 2.1: text-to-video and VACE -----------------------------------------------------------


def tiny_t5_tokenizer():
    """A small Unigram T5 tokenizer made in code: ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2, then a
    piece for each word :mod:`kinema.models.tiny_clip` knows and single characters, so any
    lower-case text tokenizes (other characters are ``<unk>``)."""
    require("transformers", "ml", feature="tiny Wan")
    from transformers import T5Tokenizer

    vocab = ([("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
             + [("\u2581" + word, -5.0) for word in WORDS] + [(ch, -8.0) for ch in _T5_CHARS])
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)


def _wan_components(seed: int, *, vace: bool) -> dict:
    require("diffusers", "ml", feature="tiny Wan")
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanTransformer3DModel,
        WanVACETransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = tiny_t5_tokenizer()
    text = UMT5Config(vocab_size=len(tokenizer), d_model=WAN_TEXT_WIDTH, d_kv=8, d_ff=37, num_layers=2,
                      num_heads=4, relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1,
                      decoder_start_token_id=0)
    with seeded(seed):
        text_encoder = UMT5EncoderModel(text)
        vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                               temperal_downsample=[False, True, True])
        if vace:  # VACE blocks after layers 0 and 2 (diffusers needs layer 0 among them)
            transformer = WanVACETransformer3DModel(**{**_WAN_TRANSFORMER, "num_layers": 3},
                                                    vace_layers=[0, 2], vace_in_channels=96)
        else:
            transformer = WanTransformer3DModel(**_WAN_TRANSFORMER)
        _randomise_zeros(transformer)
    # The real repositories' scheduler: UniPC on flow sigmas, shifted 3.0 (480p).
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        flow_shift=3.0)
    return {"tokenizer": tokenizer, "text_encoder": text_encoder, "vae": vae,
            "transformer": transformer, "scheduler": scheduler}


def build_tiny_wan(out: Path, *, seed: int = 0) -> Path:
    """Write a tiny random-weight Wan 2.1 text-to-video pipeline folder to ``out``;
    ``WanPipeline.from_pretrained(out)`` loads it offline (frames 4k+1, sides multiples of 16)."""
    from diffusers import WanPipeline

    out = Path(out)
    WanPipeline(**_wan_components(seed, vace=False)).save_pretrained(out)
    write_card(out, WAN_CARD)
    return out


def build_tiny_wan_vace(out: Path, *, seed: int = 0) -> Path:
    """Write a tiny random-weight Wan 2.1 VACE pipeline folder to ``out``;
    ``WanVACEPipeline.from_pretrained(out)`` loads it offline."""
    from diffusers import WanVACEPipeline

    out = Path(out)
    WanVACEPipeline(**_wan_components(seed, vace=True)).save_pretrained(out)
    write_card(out, WAN_CARD)
    return out
