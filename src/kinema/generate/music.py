"""Scoring for kinema tv: music from words with MusicGen, loudness normalised, made ready for
the channel and joined with crossfades.

- :class:`MusicGenerator`: MusicGen through transformers (``MusicgenForConditionalGeneration``
  and its processor; the registry's ``musicgen-small``, task ``music``, or any such folder, e.g.
  ``kinema models tiny musicgen``). ``generator(prompt, seconds, seed=)`` gives mono float32 at the
  model's rate (32 kHz), exactly ``round(seconds * rate)`` samples: the decoder runs for the
  frames that cover the duration (plus the codebook delay) and the audio is cut to length.
  Pieces longer than the model's window (30 s for MusicGen) are made as several pieces and
  crossfaded. The same seed gives the same audio on the same machine.
- :func:`integrated_loudness` / :func:`normalise_loudness`: ITU-R BS.1770-4 integrated loudness
  (K-weighting, 400 ms blocks overlapping by 75 %, the -70 LUFS absolute gate and the -10 LU
  relative gate), implemented here (numpy and scipy's ``lfilter``) rather than taking
  pyloudnorm (MIT, on PyPI) as another dependency; the tests check it against the standard's
  calibration (a 0 dBFS 997 Hz sine in one channel reads -3.01 LUFS).
- :func:`to_channel`: resampled (polyphase) to the channel's 48 kHz, mono copied to stereo.
- :func:`crossfade` and :func:`join`: consecutive pieces overlapped with an equal-power (or
  linear) fade.
- :func:`score_cues`: a shot list's ``music_cues()`` (mood, seconds) to one 48 kHz stereo track
  of the list's length, each piece at the target loudness, crossfaded at the mood changes.

Melody conditioning (``musicgen-melody``, another model class taking a reference track's
chroma) is not wired in: its feature extractor needs torchaudio, which kinema does not install.

Arrays in, arrays out: audio is float32 ``(channels, samples)`` as in :mod:`kinema.media.audio`
(mono generation results are ``(samples,)``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import numpy as np

from kinema.core.errors import InvalidArgumentError, KinemaError
from kinema.core.extras import require

log = logging.getLogger(__name__)

CHANNEL_RATE = 48000
DEFAULT_LUFS = -16.0  # streaming platforms' usual target (EBU R128 broadcast is -23)
PEAK_CEILING = 10 ** (-1.0 / 20)  # -1 dBFS sample peak after normalising
SILENCE_LUFS = -70.0


class MusicError(KinemaError):
    """No music could be made (model missing, bad duration, a failed generation)."""


# -- loudness: ITU-R BS.1770-4 -------------------------------------------------------------------


def k_weighting(rate: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The two biquads of BS.1770's K-weighting at ``rate`` Hz: the high shelf (head effects)
    and the RLB high-pass, as ``(b, a)`` each. From the analogue prototypes (as libebur128 does),
    so at 48 kHz they are the standard's tabled coefficients and at other rates the same curve."""
    if rate <= 0:
        raise InvalidArgumentError(f"a sample rate of {rate} Hz")
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10 ** (gain_db / 20)
    vb = vh ** 0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = (np.array([(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0,
                       (vh - vb * k / q + k * k) / a0]),
             np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]))
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1 + k / q + k * k
    highpass = (np.array([1.0, -2.0, 1.0]), np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]))
    return shelf, highpass


def _channels(samples: np.ndarray) -> np.ndarray:
    data = np.asarray(samples, dtype=np.float64)
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2 or data.shape[0] > 8:
        raise InvalidArgumentError(f"audio of shape {np.shape(samples)}",
                                   hint="give (samples,) or (channels, samples)")
    return data


def integrated_loudness(samples: np.ndarray, rate: int) -> float:
    """BS.1770-4 integrated loudness of ``samples`` (mono ``(n,)`` or ``(channels, n)``, full
    scale 1.0) in LUFS; ``-inf`` for silence or audio shorter than one 400 ms block. Every
    channel weighs 1 (kinema's audio is mono or stereo; 5.1's surround weights are not used)."""
    signal = require("scipy.signal", "ml", feature="loudness")
    data = _channels(samples)
    shelf, highpass = k_weighting(rate)
    weighted = signal.lfilter(*highpass, signal.lfilter(*shelf, data, axis=1), axis=1)
    block, step = round(0.4 * rate), round(0.1 * rate)
    if data.shape[1] < block:
        return float("-inf")
    count = 1 + (data.shape[1] - block) // step
    # Mean square of each 400 ms block, summed over channels, from a running sum.
    power = np.cumsum(np.concatenate([np.zeros((data.shape[0], 1)), weighted ** 2], axis=1), axis=1)
    starts = np.arange(count) * step
    z = ((power[:, starts + block] - power[:, starts]) / block).sum(axis=0)
    with np.errstate(divide="ignore"):
        loudness = -0.691 + 10 * np.log10(z)
    z = z[loudness > SILENCE_LUFS]
    if z.size == 0:
        return float("-inf")
    relative = -0.691 + 10 * math.log10(z.mean()) - 10.0
    with np.errstate(divide="ignore"):
        z = z[-0.691 + 10 * np.log10(z) > relative]
    return float(-0.691 + 10 * math.log10(z.mean()))


def normalise_loudness(samples: np.ndarray, rate: int, target: float = DEFAULT_LUFS, *,
                       ceiling: float = PEAK_CEILING) -> np.ndarray:
    """``samples`` scaled to ``target`` LUFS (float32, same shape). Silence stays silence. When
    that gain would put a sample peak over ``ceiling`` (-1 dBFS), the gain stops there and a note
    is logged: quieter than asked beats clipped."""
    if not -70 < target < 0:
        raise InvalidArgumentError(f"a loudness target of {target} LUFS", hint="give -70 to 0, e.g. -16")
    data = np.asarray(samples, dtype=np.float32)
    loudness = integrated_loudness(data, rate)
    if not math.isfinite(loudness):
        return data.copy()
    gain = 10 ** ((target - loudness) / 20)
    peak = float(np.max(np.abs(data))) * gain
    if peak > ceiling:
        log.info("music normalised to %.1f LUFS, not %.1f: a peak would clip",
                 target - 20 * math.log10(peak / ceiling), target)
        gain *= ceiling / peak
    return (data * gain).astype(np.float32)


# -- the channel's format, crossfades --------------------------------------------------------------


def resample(samples: np.ndarray, rate: int, out_rate: int) -> np.ndarray:
    """``samples`` (last axis is time) at ``out_rate``: polyphase, with scipy's default Kaiser
    anti-aliasing filter; ``round(n * out_rate / rate)`` samples."""
    data = np.asarray(samples, dtype=np.float32)
    if rate == out_rate:
        return data.copy()
    signal = require("scipy.signal", "ml", feature="resampling audio")
    g = math.gcd(int(rate), int(out_rate))
    return signal.resample_poly(data, out_rate // g, rate // g, axis=-1).astype(np.float32)


def to_channel(samples: np.ndarray, rate: int, *, out_rate: int = CHANNEL_RATE,
               channels: int = 2) -> np.ndarray:
    """Audio for the channel: ``(channels, n)`` float32 at ``out_rate`` (mono is copied to each
    channel; stereo to mono is averaged)."""
    data = resample(_channels(samples).astype(np.float32), rate, out_rate)
    if data.shape[0] == channels:
        return data
    if data.shape[0] == 1:
        return np.repeat(data, channels, axis=0)
    mono = data.mean(axis=0, keepdims=True)
    return mono if channels == 1 else np.repeat(mono, channels, axis=0)


def crossfade(a: np.ndarray, b: np.ndarray, overlap: int, *, curve: str = "power") -> np.ndarray:
    """``a`` then ``b`` (same channels; last axis time), the last ``overlap`` samples of ``a``
    faded out over the first ``overlap`` of ``b``: ``len(a) + len(b) - overlap`` samples.
    ``power``: equal-power (sine/cosine) fades, for unrelated music; ``linear``: gains summing
    to one, for the same signal on both sides."""
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    if a.shape[:-1] != b.shape[:-1]:
        raise InvalidArgumentError(f"cannot crossfade audio of shapes {a.shape} and {b.shape}")
    if not 0 <= overlap <= min(a.shape[-1], b.shape[-1]):
        raise InvalidArgumentError(f"a crossfade of {overlap} samples between pieces of "
                                   f"{a.shape[-1]} and {b.shape[-1]}")
    if overlap == 0:
        return np.concatenate([a, b], axis=-1)
    t = (np.arange(overlap, dtype=np.float64) + 0.5) / overlap
    if curve == "power":
        fade_out, fade_in = np.cos(t * np.pi / 2), np.sin(t * np.pi / 2)
    elif curve == "linear":
        fade_out, fade_in = 1.0 - t, t
    else:
        raise InvalidArgumentError(f"no crossfade curve {curve!r}", hint="use power or linear")
    middle = a[..., -overlap:] * fade_out.astype(np.float32) + b[..., :overlap] * fade_in.astype(np.float32)
    return np.concatenate([a[..., :-overlap], middle, b[..., overlap:]], axis=-1)


def join(pieces: Sequence[np.ndarray], overlap: int, *, curve: str = "power") -> np.ndarray:
    """``pieces`` one after another, each pair crossfaded over ``overlap`` samples (shorter
    where a piece is shorter)."""
    if not pieces:
        raise InvalidArgumentError("no audio to join")
    out = np.asarray(pieces[0], dtype=np.float32)
    for piece in pieces[1:]:
        out = crossfade(out, piece, min(overlap, out.shape[-1], np.shape(piece)[-1]), curve=curve)
    return out


# -- MusicGen -------------------------------------------------------------------------------------


def music_prompt(mood: str, theme: str | None = None) -> str:
    """The words MusicGen gets for a shot's ``mood`` (with the theme as a hint of the setting)."""
    mood = " ".join(mood.split()) or "calm"
    text = f"{mood} instrumental music, soundtrack"
    return f"{text}, for {theme}" if theme else text


class MusicGenerator:
    """MusicGen loaded once: ``model`` a folder or registry name (task ``music``, default
    ``musicgen-small``). Weights in float32 on a CPU, float16 on a GPU."""

    def __init__(self, model: str | os.PathLike[str] | None = None, *, device: str | None = None,
                 guidance: float | None = None) -> None:
        from kinema.models.device import choose_device, choose_dtype, quiet_diffusers
        from kinema.models.registry import resolve

        self.folder = resolve(model, task="music")
        torch, _ = quiet_diffusers("music")
        transformers = require("transformers", "ml", feature="music")
        self.device = choose_device(device)
        self.dtype = choose_dtype(self.device)
        try:
            self.processor = transformers.AutoProcessor.from_pretrained(self.folder)
            self.model = transformers.MusicgenForConditionalGeneration.from_pretrained(
                self.folder, dtype=self.dtype).to(self.device).eval()
        except (OSError, ValueError) as exc:
            raise MusicError(f"could not load MusicGen: {exc}", path=self.folder,
                             hint="give a folder from kinema models pull/tiny musicgen") from exc
        config = self.model.config
        self.rate = int(config.audio_encoder.sampling_rate)
        self.frame_rate = int(config.audio_encoder.frame_rate)
        self.codebooks = int(config.decoder.num_codebooks)
        self.guidance = guidance if guidance is not None else float(
            self.model.generation_config.guidance_scale or 3.0)
        # The decoder's window, less the codebook delay: 30 s for the real models.
        window = int(config.decoder.max_position_embeddings) - self.codebooks
        self.max_seconds = min(30.0, window / self.frame_rate)
        self._torch = torch

    def generate(self, prompt: str, seconds: float, *, seed: int = 0) -> np.ndarray:
        """One piece of ``seconds`` (at most :attr:`max_seconds`): mono float32 at :attr:`rate`,
        ``round(seconds * rate)`` samples."""
        if not 0 < seconds <= self.max_seconds + 1e-9:
            raise MusicError(f"a piece of {seconds} s", hint=f"give up to {self.max_seconds:g} s")
        torch = self._torch
        wanted = round(seconds * self.rate)
        frames = math.ceil(wanted / self.rate * self.frame_rate)
        inputs = self.processor(text=[prompt], padding=True, return_tensors="pt").to(self.device)
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(seed)
            if self.device.type == "cuda":
                torch.cuda.manual_seed_all(seed)
            audio = self.model.generate(**inputs, do_sample=True, guidance_scale=self.guidance,
                                        max_new_tokens=frames + self.codebooks - 1)
        out = audio[0, 0].float().cpu().numpy()
        if out.shape[0] < wanted:  # never seen; the frames cover the duration
            out = np.pad(out, (0, wanted - out.shape[0]))
        return np.ascontiguousarray(out[:wanted], dtype=np.float32)

    def __call__(self, prompt: str, seconds: float, *, seed: int = 0, overlap: float = 1.0) -> np.ndarray:
        """``seconds`` of music (mono, :attr:`rate`), as pieces crossfaded over ``overlap``
        seconds when longer than the model's window."""
        if not 0 < seconds <= 3600:
            raise MusicError(f"{seconds} s of music", hint="give more than 0 s and at most an hour")
        if seconds <= self.max_seconds:
            return self.generate(prompt, seconds, seed=seed)
        count = math.ceil((seconds - overlap) / (self.max_seconds - overlap))
        each = (seconds + (count - 1) * overlap) / count
        pieces = [self.generate(prompt, each, seed=seed + i) for i in range(count)]
        out = join(pieces, round(overlap * self.rate))
        wanted = round(seconds * self.rate)
        return np.pad(out, (0, max(0, wanted - out.shape[0])))[:wanted]


def score_cues(cues: Sequence[tuple[str, float]], generator: MusicGenerator, *, theme: str | None = None,
               seed: int = 0, loudness: float = DEFAULT_LUFS, overlap: float = 1.0,
               out_rate: int = CHANNEL_RATE) -> np.ndarray:
    """One stereo track at ``out_rate`` for ``cues`` (``ShotList.music_cues()``: mood and
    seconds), exactly as long as the cues together: each piece made ``overlap`` seconds longer
    (the last excepted), made stereo at ``out_rate``, normalised to ``loudness`` LUFS (as the
    stereo track plays), and crossfaded into the next at the
    mood change."""
    if not cues:
        raise MusicError("no music cues", hint="a shot list has at least one shot")
    pieces = []
    for i, (mood, seconds) in enumerate(cues):
        extra = overlap if i < len(cues) - 1 else 0.0
        mono = generator(music_prompt(mood, theme), seconds + extra, seed=seed + 1000 * i)
        stereo = to_channel(mono, generator.rate, out_rate=out_rate)
        pieces.append(normalise_loudness(stereo, out_rate, loudness))
    track = join(pieces, round(overlap * out_rate))
    wanted = round(sum(seconds for _, seconds in cues) * out_rate)
    return np.pad(track, ((0, 0), (0, max(0, wanted - track.shape[1]))))[:, :wanted]

