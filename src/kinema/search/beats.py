"""Beats in music: when a cut should land (librosa's onset strength, tempo and beat tracker).

The tracker's beats come from onset strength frames, which lag the sound by a frame or two;
each beat is moved onto the nearest detected onset within ``SNAP`` seconds, so cuts land on the
attack of the beat rather than just after it. An onset is a change from what came before, so the
sound is analysed after a mirror image of its first ``LEAD_IN`` seconds: a beat on the very
first sample still has an attack, and the start of the sound is not one. Silence (quieter than
``SILENCE_DB``) has no beats and no tempo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kinema.core.errors import InvalidArgumentError
from kinema.core.extras import require

HOP = 256
SNAP = 0.07
LEAD_IN = 0.25
SILENCE_DB = -60.0


@dataclass(frozen=True)
class Beats:
    """Beat times in seconds and the tempo they imply (``None`` when there are no beats)."""

    tempo: float | None
    times: np.ndarray

    def to_json(self) -> dict[str, object]:
        return {"tempo": None if self.tempo is None else round(self.tempo, 3),
                "beats": [round(float(t), 4) for t in self.times]}


def find_beats(samples: np.ndarray, rate: int) -> Beats:
    """Beats of mono ``samples`` (float, any rate librosa takes)."""
    librosa = require("librosa", "search", feature="finding beats")

    if samples.ndim != 1 or len(samples) < rate // 2:
        raise InvalidArgumentError("beat tracking needs at least half a second of mono sound")
    y = samples.astype(np.float32)
    if np.sqrt(np.mean(np.square(y, dtype=np.float64))) < 10 ** (SILENCE_DB / 20):
        return Beats(None, np.empty(0))
    lead = min(int(LEAD_IN * rate), len(y) - 1)
    y = np.concatenate([y[lead:0:-1], y])
    envelope = librosa.onset.onset_strength(y=y, sr=rate, hop_length=HOP)
    tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=envelope, sr=rate, hop_length=HOP))[0])
    _, frames = librosa.beat.beat_track(onset_envelope=envelope, sr=rate, hop_length=HOP, bpm=tempo,
                                        tightness=400, trim=True)
    if not len(frames):
        return Beats(None, np.empty(0))
    frames = restore_first_beats(envelope, frames, period=60 / tempo * rate / HOP, start=lead / HOP,
                                 window=max(1, round(SNAP * rate / HOP)))
    times = np.asarray(frames) * HOP / rate - lead / rate
    onsets = librosa.onset.onset_detect(onset_envelope=envelope, sr=rate, hop_length=HOP, units="time")
    beats = snap_to_onsets(times, onsets - lead / rate)
    return Beats(tempo, np.clip(beats[beats > -SNAP], 0, None))


def restore_first_beats(envelope: np.ndarray, frames: np.ndarray, *, period: float, start: float,
                        window: int) -> list[float]:
    """``frames`` (beats, in ``envelope`` frames) with the beats one ``period`` before the first
    put back while they fall after ``start`` and an onset within ``window`` frames is at least
    half as strong as a typical beat's: the tracker trims strong beats at the start too."""
    strength = float(np.median(envelope[frames]))
    out = [float(f) for f in frames]

    def strong(f: float) -> bool:
        k = int(round(f))
        return float(envelope[max(k - window, 0): k + window + 1].max(initial=0.0)) >= strength / 2

    while out[0] - period >= start - window and strong(out[0] - period):
        out.insert(0, out[0] - period)
    return out


def snap_to_onsets(beats: np.ndarray, onsets: np.ndarray, window: float = SNAP) -> np.ndarray:
    """Each beat moved to the nearest onset within ``window`` seconds (else left where it is)."""
    if not len(onsets):
        return np.asarray(beats, float)
    onsets = np.sort(np.asarray(onsets, float))
    out = []
    for t in beats:
        k = int(np.searchsorted(onsets, t))
        near = [onsets[j] for j in (k - 1, k) if 0 <= j < len(onsets)]
        best = min(near, key=lambda o: abs(o - t))
        out.append(best if abs(best - t) <= window else t)
    return np.unique(np.asarray(out, float))
