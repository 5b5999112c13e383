"""A tiny random-weight Qwen2 instruct model for tests and offline smoke runs: the layout of
``Qwen/Qwen2.5-0.5B-Instruct`` (``config.json``, ``generation_config.json``, the weights, a
byte-level BPE tokenizer with the ChatML chat template), a few hundred KB.

``AutoModelForCausalLM.from_pretrained(out)`` and ``AutoTokenizer.from_pretrained(out)`` load it
offline, so :mod:`kinema.generate.shotlist`'s transformers writer runs the code the real model
runs: the chat template, generation, decoding. Its weights are random, so what it writes is
noise, never a shot list (the writer's retry and fallback are what its tests see).

The tokenizer is made in code: the 256 byte-level symbols (so any text tokenizes), merges for a
few dozen words (:data:`kinema.models.tiny_clip.WORDS` and JSON keys) with and without their
leading space, and Qwen's special tokens ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``.
The chat template is Qwen2.5's ChatML without tool calls.
"""

from __future__ import annotations

from pathlib import Path

from kinema.core.extras import require
from kinema.models.device import seeded
from kinema.models.tiny_clip import WORDS

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
# Words worth one token each: the ones tiny_clip knows and a shot list's keys.
_LLM_WORDS = WORDS + ("shots", "prompt", "duration", "camera", "subject", "mood", "music", "title",
                      "slow", "pan", "dolly", "zoom", "calm", "true", "false", "null")
# Qwen2.5's chat template (ChatML), without the tool-call branches; a default system message
# when the conversation has none, as Qwen2.5's own does.
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def tiny_llm_vocab() -> tuple[dict[str, int], list[str]]:
    """The byte-level BPE ``vocab`` (token -> id) and ``merges`` ("left right", by rank)."""
    from tokenizers.pre_tokenizers import ByteLevel

    tokens: list[str] = sorted(ByteLevel.alphabet())
    merges: list[str] = []
    space = "\u0120"  # byte-level's picture of " "
    for word in _LLM_WORDS:
        for start in (word, space + word):
            prefix = start[0]
            for ch in start[1:]:
                merges.append(f"{prefix} {ch}")
                prefix += ch
                tokens.append(prefix)
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    return vocab, list(dict.fromkeys(merges))


def tiny_llm_tokenizer():
    """The tiny Qwen2 tokenizer, made in code (specials after the BPE pieces, as in Qwen's)."""
    require("transformers", "ml", feature="tiny LLM")
    from transformers import Qwen2Tokenizer

    vocab, merges = tiny_llm_vocab()
    for special in (ENDOFTEXT, IM_START, IM_END):
        vocab[special] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges], unk_token=None,
                               eos_token=IM_END, pad_token=ENDOFTEXT, model_max_length=32768)
    tokenizer.add_special_tokens({"additional_special_tokens": [IM_START, IM_END]})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_llm(out: Path, *, seed: int = 0) -> Path:
    """Write a tiny random-weight ``Qwen2ForCausalLM`` and its tokenizer to ``out``."""
    require("transformers", "ml", feature="tiny LLM")
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = tiny_llm_tokenizer()
    eos = tokenizer.convert_tokens_to_ids(IM_END)
    pad = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    # Qwen2.5-0.5B's shape in miniature: grouped-query attention, tied embeddings, RoPE 1e6.
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, rope_theta=1000000.0, tie_word_embeddings=True,
                         bos_token_id=pad, eos_token_id=eos, pad_token_id=pad)
    with seeded(seed):
        model = Qwen2ForCausalLM(config).eval()
    # Qwen2.5-Instruct's sampling defaults.
    model.generation_config = GenerationConfig(do_sample=True, temperature=0.7, top_p=0.8, top_k=20,
                                               repetition_penalty=1.05, bos_token_id=pad,
                                               eos_token_id=[eos, pad], pad_token_id=pad)
    out = Path(out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
