"""Tiny random-weight SDXL, SDXL ControlNet and LoRA for tests and offline smoke runs.

The folders have the real checkpoints' layout (``model_index.json`` with ``unet/``, ``vae/``,
``text_encoder/``, ``text_encoder_2/``, ``tokenizer/``, ``tokenizer_2/``, ``scheduler/``; a
ControlNet's ``config.json`` and weights; a LoRA ``.safetensors`` in diffusers' key layout), so
the code that loads real weights loads these unchanged. The sizes follow diffusers' own fast
SDXL tests (two CLIP text encoders of width 32 whose penultimate states concatenate to the
UNet's cross-attention width 64, the ``text_time`` added condition of 6 x 8 + 32), with one
difference: the VAE has four levels, so images are eight times their latents, as with the real
VAE, and sizes, crops and control images behave as they will on real weights. The tokenizers
are the tiny byte-level BPE of :mod:`kinema.models.tiny_clip`, made in code. The pictures are
noise; a 64x64 image takes a few tens of milliseconds per step on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

from kinema.core.extras import require
from kinema.models.device import import_torch, seeded
from kinema.models.tiny_clip import EOS, MAX_TEXT_LEN, tiny_vocab

# What ``kinema`` reads as the model's card: its sampling defaults (see kinema.generate.sdxl).
CARD = {"steps": 2, "guidance": 5.0, "scheduler": "euler", "size": [64, 64]}
TEXT_WIDTH = 32
CROSS_ATTENTION = 2 * TEXT_WIDTH
TIME_EMBED = 8


def _unet_config() -> dict:
    return {
        "sample_size": 8, "in_channels": 4, "out_channels": 4, "layers_per_block": 1,
        "block_out_channels": (32, 64), "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"), "attention_head_dim": (2, 4),
        "use_linear_projection": True, "addition_embed_type": "text_time",
        "addition_time_embed_dim": TIME_EMBED, "transformer_layers_per_block": (1, 2),
        "projection_class_embeddings_input_dim": 6 * TIME_EMBED + TEXT_WIDTH,
        "cross_attention_dim": CROSS_ATTENTION, "norm_num_groups": 8,
    }


def _components(seed: int) -> dict:
    require("diffusers", "ml", feature="tiny SDXL")
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    vocab, merges = tiny_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges],
                              model_max_length=MAX_TEXT_LEN)
    text = CLIPTextConfig(vocab_size=len(vocab), hidden_size=TEXT_WIDTH, intermediate_size=37,
                          num_hidden_layers=3, num_attention_heads=4, projection_dim=TEXT_WIDTH,
                          max_position_embeddings=MAX_TEXT_LEN, hidden_act="gelu",
                          bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab[EOS],
                          pad_token_id=vocab[EOS])
    with seeded(seed):
        unet = UNet2DConditionModel(**_unet_config())
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, sample_size=64,
                            block_out_channels=(16, 16, 32, 32), layers_per_block=1, norm_num_groups=8,
                            down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4)
        text_encoder = CLIPTextModel(text)
        text_encoder_2 = CLIPTextModelWithProjection(text)
    # SDXL base's scheduler settings (its scheduler_config.json).
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "text_encoder_2": text_encoder_2,
            "tokenizer": tokenizer, "tokenizer_2": tokenizer, "scheduler": scheduler}


def write_card(out: Path, card: dict) -> None:
    """Write ``kinema.json``: the sampling defaults kinema uses for the model in ``out``."""
    (out / "kinema.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")


def build_tiny_sdxl(out: Path, *, seed: int = 0) -> Path:
    """Write a tiny random-weight SDXL pipeline folder to ``out``;
    ``StableDiffusionXLPipeline.from_pretrained(out)`` loads it offline."""
    from diffusers import StableDiffusionXLPipeline

    out = Path(out)
    StableDiffusionXLPipeline(**_components(seed)).save_pretrained(out)
    write_card(out, CARD)
    return out


def build_tiny_controlnet(out: Path, *, seed: int = 1) -> Path:
    """Write a tiny random-weight SDXL ControlNet matching :func:`build_tiny_sdxl`'s UNet.

    Unlike a freshly initialised ControlNet (whose output convolutions start at zero, so it
    changes nothing), every weight is random, so tests can see the condition act."""
    torch = import_torch()
    require("diffusers", "ml", feature="tiny ControlNet")
    from diffusers import ControlNetModel

    with seeded(seed):
        net = ControlNetModel(**{k: v for k, v in _unet_config().items()
                                 if k not in ("sample_size", "out_channels", "up_block_types")},
                              conditioning_embedding_out_channels=(8, 16, 16, 16))
        with torch.no_grad():
            for block in [*net.controlnet_down_blocks, net.controlnet_mid_block]:
                block.weight.normal_(0.0, 0.05)
    out = Path(out)
    net.save_pretrained(out)
    return out


def build_tiny_lora(out: Path, *, rank: int = 4, seed: int = 2) -> Path:
    """Write a tiny random LoRA for :func:`build_tiny_sdxl`'s UNet to ``out`` (a
    ``.safetensors`` file, or ``pytorch_lora_weights.safetensors`` inside a folder)."""
    torch = import_torch()
    require("peft", "ml", feature="tiny LoRA")
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from peft import LoraConfig, get_peft_model_state_dict

    unet = UNet2DConditionModel(**_unet_config())
    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                        target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    with seeded(seed):
        unet.add_adapter(config)
        # peft starts B at zero (a LoRA that does nothing); a test LoRA must change the output.
        with torch.no_grad():
            for name, param in unet.named_parameters():
                if "lora_B" in name:
                    param.normal_(0.0, 0.2)
    layers = get_peft_model_state_dict(unet)
    out = Path(out)
    folder, name = (out.parent, out.name) if out.suffix == ".safetensors" else (out, None)
    folder.mkdir(parents=True, exist_ok=True)
    StableDiffusionXLPipeline.save_lora_weights(folder, unet_lora_layers=layers, weight_name=name,
                                                safe_serialization=True)
    return out if name else out / "pytorch_lora_weights.safetensors"
