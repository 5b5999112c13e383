"""Scoring for kinema tv: MusicGen (the tiny one) to length and seeded, BS.1770 loudness
against the standard's calibration, the channel's 48 kHz stereo, crossfades."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("scipy")

from kinema.core.errors import InvalidArgumentError
from kinema.generate.music import (
    MusicError,
    crossfade,
    integrated_loudness,
    join,
    k_weighting,
    music_prompt,
    normalise_loudness,
    resample,
    score_cues,
    to_channel,
)


def sine(freq: float, seconds: float, rate: int, amplitude: float = 1.0) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(round(seconds * rate)) / rate)).astype(np.float32)


# -- loudness ----------------------------------------------------------------------------------------


def test_k_weighting_at_48k_is_the_standards_table() -> None:
    # ITU-R BS.1770-4, tables 1 and 2 (48 kHz).
    (b1, a1), (b2, a2) = k_weighting(48000)
    np.testing.assert_allclose(b1, [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-8)
    np.testing.assert_allclose(a1, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-8)
    np.testing.assert_allclose(b2, [1.0, -2.0, 1.0])
    np.testing.assert_allclose(a2, [1.0, -1.99004745483398, 0.99007225036621], atol=1e-8)


@pytest.mark.parametrize("rate", [32000, 44100, 48000])
def test_loudness_matches_the_bs1770_calibration(rate: int) -> None:
    # BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS; in both channels 0.
    tone = sine(997, 5.0, rate)
    assert integrated_loudness(tone, rate) == pytest.approx(-3.01, abs=0.05)
    assert integrated_loudness(np.stack([tone, tone]), rate) == pytest.approx(0.0, abs=0.05)
    # 20 dB quieter reads 20 LU lower.
    assert integrated_loudness(tone * 0.1, rate) == pytest.approx(-23.01, abs=0.05)


def test_loudness_gates_silence_and_quiet_passages() -> None:
    rate = 48000
    tone = sine(997, 4.0, rate, 0.5)
    level = integrated_loudness(tone, rate)
    # Ungated, half silence would read 3 dB lower; only the few 400 ms blocks straddling the
    # end of the tone count, partly silent.
    with_silence = np.concatenate([tone, np.zeros(rate * 4, np.float32)])
    assert integrated_loudness(with_silence, rate) == pytest.approx(level, abs=0.25)  # absolute gate
    quiet = sine(997, 4.0, rate, 0.5 * 10 ** (-30 / 20))  # 30 dB down: under the relative gate
    assert integrated_loudness(np.concatenate([tone, quiet]), rate) == pytest.approx(level, abs=0.25)
    assert integrated_loudness(np.zeros(rate, np.float32), rate) == -math.inf
    assert integrated_loudness(tone[: rate // 4], rate) == -math.inf  # shorter than a block


@pytest.mark.parametrize("target", [-23.0, -16.0, -14.0])
def test_normalise_hits_the_target(target: float) -> None:
    rate = 32000
    rng = np.random.default_rng(0)
    # A 1 kHz tone at a known level (-13.01 LUFS), and music-like noise with a fade.
    tone = sine(1000, 3.0, rate, 10 ** (-10 / 20))
    noise = (rng.standard_normal(rate * 3) * 0.05 * np.linspace(0.2, 1, rate * 3)).astype(np.float32)
    for signal in (tone, noise):
        out = normalise_loudness(signal, rate, target)
        assert out.dtype == np.float32 and out.shape == signal.shape
        assert integrated_loudness(out, rate) == pytest.approx(target, abs=0.5)
    assert integrated_loudness(tone, rate) == pytest.approx(-13.01, abs=0.1)


def test_normalise_never_clips_and_keeps_silence() -> None:
    rate = 32000
    spiky = np.zeros(rate * 2, np.float32)
    spiky[::4000] = 0.9  # loud peaks, little loudness
    out = normalise_loudness(spiky, rate, -10.0)
    assert np.max(np.abs(out)) <= 10 ** (-1 / 20) + 1e-6
    assert not np.any(normalise_loudness(np.zeros(rate, np.float32), rate))
    with pytest.raises(InvalidArgumentError):
        normalise_loudness(spiky, rate, 5.0)


# -- the channel's format and crossfades ---------------------------------------------------------------


def test_to_channel_is_48k_stereo_at_the_same_level() -> None:
    tone = sine(440, 2.0, 32000, 0.5)
    out = to_channel(tone, 32000)
    assert out.shape == (2, 96000) and out.dtype == np.float32
    assert np.array_equal(out[0], out[1])
    np.testing.assert_allclose(out[0, 1000:-1000], sine(440, 2.0, 48000, 0.5)[1000:-1000], atol=2e-3)
    assert integrated_loudness(out[:1], 48000) == pytest.approx(integrated_loudness(tone, 32000), abs=0.05)
    assert resample(tone, 32000, 32000) is not tone


def test_crossfade_length_and_continuity() -> None:
    rate = 48000
    a, b = np.ones((2, rate), np.float32), np.ones((2, rate // 2), np.float32)
    overlap = rate // 10
    linear = crossfade(a, b, overlap, curve="linear")
    assert linear.shape == (2, rate + rate // 2 - overlap)
    np.testing.assert_allclose(linear, 1.0, atol=1e-6)  # the same signal: no dip, no bump
    # Equal power: unrelated noise keeps its power through the fade, and no step at the seams.
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(rate).astype(np.float32), rng.standard_normal(rate).astype(np.float32)
    joined = crossfade(x, y, overlap)
    assert joined.shape == (2 * rate - overlap,)
    assert np.array_equal(joined[: rate - overlap], x[: rate - overlap])
    assert np.array_equal(joined[rate:], y[overlap:])
    middle = joined[rate - overlap: rate]
    assert np.mean(middle ** 2) == pytest.approx(1.0, abs=0.1)
    tone = crossfade(sine(220, 1.0, rate), sine(220, 1.0, rate), overlap, curve="linear")
    assert np.max(np.abs(np.diff(tone))) <= 2 * np.pi * 220 / rate * 1.01  # smooth as the sine itself
    assert join([x, y, x], overlap).shape == (3 * rate - 2 * overlap,)
    with pytest.raises(InvalidArgumentError):
        crossfade(x, y, rate + 1)
    with pytest.raises(InvalidArgumentError):
        crossfade(x, y[None], 10)


# -- MusicGen (tiny) -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generator(tiny_musicgen):
    pytest.importorskip("torch")
    from kinema.generate.music import MusicGenerator

    return MusicGenerator(tiny_musicgen, device="cpu")


@pytest.mark.parametrize("seconds", [0.5, 1.37])
def test_tiny_musicgen_makes_the_asked_duration(generator, seconds: float) -> None:
    assert generator.rate == 32000 and generator.frame_rate == 50
    audio = generator(music_prompt("calm ambient", "a fox"), seconds, seed=1)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.shape[0] - seconds * generator.rate) <= 1
    assert np.all(np.isfinite(audio)) and np.any(audio)


def test_tiny_musicgen_same_seed_same_audio(generator) -> None:
    a = generator("tense strings", 0.6, seed=4)
    assert np.array_equal(a, generator("tense strings", 0.6, seed=4))
    assert not np.array_equal(a, generator("tense strings", 0.6, seed=5))


def test_long_pieces_are_made_in_windows(generator, monkeypatch) -> None:
    monkeypatch.setattr(generator, "max_seconds", 0.6)
    calls: list[float] = []
    original = generator.generate

    def counted(prompt, seconds, *, seed=0):
        calls.append(seconds)
        return original(prompt, seconds, seed=seed)

    monkeypatch.setattr(generator, "generate", counted)
    audio = generator("calm", 1.5, seed=0, overlap=0.2)
    # Four pieces of 0.525 s overlapping by 0.2 s make 1.5 s (three of 0.6 s would make 1.4).
    assert audio.shape == (48000,) and calls == [pytest.approx(0.525)] * 4
    with pytest.raises(MusicError):
        generator.generate("calm", 5.0)


def test_score_cues_is_one_normalised_stereo_track(generator) -> None:
    cues = [("calm ambient", 0.8), ("tense", 1.2)]
    track = score_cues(cues, generator, theme="a fox", seed=2, loudness=-18.0, overlap=0.25)
    assert track.shape == (2, 96000) and track.dtype == np.float32
    assert integrated_loudness(track[:, :28800], 48000) == pytest.approx(-18.0, abs=0.5)
    assert np.array_equal(track, score_cues(cues, generator, theme="a fox", seed=2, loudness=-18.0,
                                            overlap=0.25))
    with pytest.raises(MusicError):
        score_cues([], generator)


def test_missing_music_model_is_one_error(tmp_path, monkeypatch) -> None:
    pytest.importorskip("torch")
    from kinema.core.errors import ModelNotFoundError
    from kinema.generate.music import MusicGenerator

    monkeypatch.setenv("KINEMA_MODELS", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="musicgen-small"):
        MusicGenerator(None)


def test_kinema_models_tiny_musicgen_resolves_by_name(tmp_path, monkeypatch) -> None:
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from kinema.cli.main import app
    from kinema.models import registry

    run = CliRunner().invoke(app, ["models", "tiny", "musicgen", str(tmp_path / "musicgen-small")])
    assert run.exit_code == 0, run.output
    assert "--music" in run.output
    again = CliRunner().invoke(app, ["models", "tiny", "musicgen", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    weights = "model.safetensors"
    assert (tmp_path / "musicgen-small" / weights).read_bytes() == (tmp_path / "again" / weights).read_bytes()
    monkeypatch.setenv("KINEMA_MODELS", str(tmp_path))
    assert registry.resolve(None, task="music") == tmp_path / "musicgen-small"
    entry = registry.spec("musicgen-small")
    assert entry.task == "music" and "non-commercial" in entry.licence and len(entry.revision) == 40
