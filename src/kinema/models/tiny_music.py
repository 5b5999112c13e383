"""A tiny random-weight MusicGen for tests and offline smoke runs: the layout of
``facebook/musicgen-small`` (``config.json`` holding the T5 text encoder's, the EnCodec audio
encoder's and the decoder's configs, the weights, the processor: T5 tokenizer and EnCodec
feature extractor), a few hundred KB.

``MusicgenForConditionalGeneration.from_pretrained(out)`` and
``MusicgenProcessor.from_pretrained(out)`` load it offline, so :mod:`kinema.generate.music` runs
the code real weights run. The sizes follow transformers' own MusicGen tests: a T5 encoder of
width 32, a two-layer decoder over 2 codebooks of 64 codes, and an EnCodec at 32 kHz (the real
one's rate) with the real one's hop of 640 samples (upsampling 8, 5, 4, 4): 50 frames a
second, and a bandwidth that gives the decoder's two codebooks. The tokenizer is
:func:`kinema.models.tiny_video.tiny_t5_tokenizer` (made in code). Seeded: the same weights
every time. The sound is noise (EnCodec's codebooks, zero in a fresh model, are drawn at random
so that different codes make different sound).
"""

from __future__ import annotations

from pathlib import Path

from kinema.core.extras import require
from kinema.models.device import seeded
from kinema.models.tiny_sdxl import write_card
from kinema.models.tiny_video import tiny_t5_tokenizer

SAMPLE_RATE = 32000
# EnCodec hop: product of the upsampling ratios, 640 as in the real one: 50 frames a second.
_RATIOS = [8, 5, 4, 4]
CODEBOOK_SIZE = 64
CODEBOOKS = 2
# kinema's card for the tiny model (the registry's musicgen-small card is its real sampling).
MUSIC_CARD = {"sample_rate": SAMPLE_RATE, "frame_rate": SAMPLE_RATE // 640, "guidance": 3.0,
              "max_seconds": 30}


def tiny_music_config(vocab_size: int):
    """The ``MusicgenConfig`` of the tiny model for a tokenizer of ``vocab_size``."""
    transformers = require("transformers", "ml", feature="tiny MusicGen")
    # The decoder's pad and start code is one past its codebook, as in the real configs, which
    # transformers warns about on every config it makes.
    transformers.utils.logging.set_verbosity_error()
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

    text = T5Config(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                    relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1,
                    decoder_start_token_id=0)
    audio = EncodecConfig(sampling_rate=SAMPLE_RATE, audio_channels=1, hidden_size=16, num_filters=4,
                          num_residual_layers=1, upsampling_ratios=_RATIOS, codebook_size=CODEBOOK_SIZE,
                          codebook_dim=16, target_bandwidths=[1.0], num_lstm_layers=1,
                          compress=1, kernel_size=3, last_kernel_size=3, residual_kernel_size=3)
    decoder = MusicgenDecoderConfig(vocab_size=CODEBOOK_SIZE, hidden_size=16, num_hidden_layers=2,
                                    num_attention_heads=4, ffn_dim=32, num_codebooks=CODEBOOKS,
                                    max_position_embeddings=2048, pad_token_id=CODEBOOK_SIZE,
                                    bos_token_id=CODEBOOK_SIZE, audio_channels=1)
    return MusicgenConfig(text_encoder=text, audio_encoder=audio, decoder=decoder)


def build_tiny_musicgen(out: Path, *, seed: int = 0) -> Path:
    """Write a tiny random-weight MusicGen (model, processor, card) to ``out``; returns ``out``."""
    require("transformers", "ml", feature="tiny MusicGen")
    from transformers import EncodecFeatureExtractor, MusicgenForConditionalGeneration, MusicgenProcessor

    tokenizer = tiny_t5_tokenizer()
    config = tiny_music_config(len(tokenizer))
    with seeded(seed):
        model = MusicgenForConditionalGeneration(config).eval()
        # EnCodec's codebooks are buffers that start at zero (training fills them): every code
        # would decode to the same sound. Random entries make different codes sound different.
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_(0.0, 1.0)
    # The real checkpoint's sampling defaults: sampling, top-k 250, guidance 3.
    gen = model.generation_config
    gen.do_sample, gen.top_k, gen.guidance_scale = True, 250, 3.0
    gen.decoder_start_token_id = CODEBOOK_SIZE
    gen.pad_token_id = CODEBOOK_SIZE
    gen.max_length = 1500
    out = Path(out)
    model.save_pretrained(out)
    features = EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0)
    MusicgenProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(out)
    write_card(out, MUSIC_CARD)
    return out
