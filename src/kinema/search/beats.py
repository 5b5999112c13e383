"""Beats in music: when a cut should land (librosa's onset strength, tempo and beat tracker).

The tracker's beats come from onset strength frames, which lag the sound by a frame or two;
each beat is moved onto the nearest detected onset within ``SNAP`` seconds, so cuts land on the
attack of the beat rather than just after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kinema.core.errors import InvalidArgumentError, MissingExtraError

HOP = 256
SNAP = 0.07


@dataclass(frozen=True)
class Beats:
    """Beat times in seconds and the tempo they imply."""

    tempo: float
    times: np.ndarray

    def to_json(self) -> dict[str, object]:
        return {"tempo": round(self.tempo, 3), "beats": [round(float(t), 4) for t in self.times]}


def find_beats(samples: np.ndarray, rate: int) -> Beats:
    """Beats of mono ``samples`` (float, any rate librosa takes)."""
    try:
        import librosa
    except ImportError as exc:
        raise MissingExtraError("finding beats needs librosa", hint="pip install 'kinema[search]'") from exc

    if samples.ndim != 1 or len(samples) < rate // 2:
        raise InvalidArgumentError("beat tracking needs at least half a second of mono sound")
    y = samples.astype(np.float32)
    envelope = librosa.onset.onset_strength(y=y, sr=rate, hop_length=HOP)
    tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=envelope, sr=rate, hop_length=HOP))[0])
    _, frames = librosa.beat.beat_track(onset_envelope=envelope, sr=rate, hop_length=HOP, bpm=tempo,
                                        tightness=400, trim=True)
    times = librosa.frames_to_time(frames, sr=rate, hop_length=HOP)
    onsets = librosa.onset.onset_detect(onset_envelope=envelope, sr=rate, hop_length=HOP, units="time")
    return Beats(tempo, snap_to_onsets(times, onsets))


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
