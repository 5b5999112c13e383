"""Speech in a sound: where someone talks, from Silero VAD (ONNX, bundled as ``silero-vad``).

The network gives a speech probability for every 32 ms window of 16 kHz mono sound (512 new
samples with the 64 before them as context, and a recurrent state carried along). A span
starts at the first window at or above ``threshold`` and ends where the probability has stayed
below ``threshold - 0.15`` for ``min_silence`` seconds; spans shorter than ``min_speech`` are
dropped, the rest widened by ``pad`` seconds each side (never past a neighbour or the ends) and
merged where they touch. Samples in, spans in seconds out; no file I/O.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kinema.core.errors import InvalidArgumentError, ModelNotFoundError

if TYPE_CHECKING:
    from pathlib import Path

BUNDLE = "silero-vad"
MODEL = "silero_vad.onnx"
RATE = 16000
WINDOW = 512  # samples per decision at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window the network sees


@dataclass(frozen=True)
class Span:
    """Speech from ``start`` to ``end`` seconds."""

    start: float
    end: float

    def to_json(self) -> dict[str, float]:
        return {"start": round(self.start, 3), "end": round(self.end, 3)}


class SileroVad:
    """Silero VAD on onnxruntime (CPU); ``model`` an ``.onnx`` path, default the bundled one."""

    def __init__(self, model: str | Path | None = None, *, threads: int | None = None) -> None:
        from kinema.core.extras import require

        ort = require("onnxruntime", "bundled", feature="speech detection")
        if model is None:
            from kinema.models.bundled import model_file

            model = model_file(BUNDLE, MODEL)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(2, len(os.sched_getaffinity(0)))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(model), sess_options=options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for missing or bad files
            raise ModelNotFoundError(f"Silero VAD cannot be loaded: {str(exc).splitlines()[0][:120]}",
                                     path=model, hint=f"run: kinema models fetch-bundled {BUNDLE}") from exc
        self.path = model

    def probabilities(self, samples: np.ndarray) -> np.ndarray:
        """Speech probability of each 512-sample window of 16 kHz mono ``samples``."""
        x = np.asarray(samples, np.float32).reshape(-1)
        n = -(-len(x) // WINDOW)
        x = np.concatenate([np.zeros(CONTEXT, np.float32), x, np.zeros(n * WINDOW - len(x), np.float32)])
        state = np.zeros((2, 1, 128), np.float32)
        sr = np.array(RATE, np.int64)
        out = np.empty(n, np.float32)
        for k in range(n):
            chunk = x[k * WINDOW:(k + 1) * WINDOW + CONTEXT][None]
            prob, state = self.session.run(None, {"input": chunk, "state": state, "sr": sr})
            out[k] = float(np.asarray(prob).reshape(-1)[0])
        return out


def spans_from(probs: np.ndarray, duration: float, *, threshold: float = 0.5, min_speech: float = 0.25,
               min_silence: float = 0.1, pad: float = 0.03) -> list[Span]:
    """Speech spans (seconds) from per-window probabilities (see the module doc)."""
    if not 0.0 < threshold < 1.0:
        raise InvalidArgumentError(f"threshold must be between 0 and 1, got {threshold}")
    step = WINDOW / RATE
    low = max(threshold - 0.15, 0.01)
    found: list[tuple[float, float]] = []
    start: float | None = None
    quiet_from: float | None = None
    for k, p in enumerate(probs):
        t = k * step
        if p >= threshold:
            quiet_from = None
            if start is None:
                start = t
        elif p < low and start is not None:
            if quiet_from is None:
                quiet_from = t
            if t + step - quiet_from >= min_silence:
                if quiet_from - start >= min_speech:
                    found.append((start, quiet_from))
                start = quiet_from = None
    if start is not None and duration - start >= min_speech:
        found.append((start, duration if quiet_from is None else quiet_from))
    spans: list[Span] = []
    for k, (a, b) in enumerate(found):
        lo = max(0.0, a - pad) if k == 0 else max(a - pad, (found[k - 1][1] + a) / 2)
        hi = min(duration, b + pad) if k == len(found) - 1 else min(b + pad, (b + found[k + 1][0]) / 2)
        if spans and lo <= spans[-1].end:
            spans[-1] = Span(spans[-1].start, hi)
        else:
            spans.append(Span(lo, hi))
    return spans


def find_speech(samples: np.ndarray, vad: SileroVad | None = None, *, rate: int = RATE,
                threshold: float = 0.5) -> list[Span]:
    """Speech spans in mono ``samples`` at ``rate`` (16 kHz; others are resampled)."""
    x = np.asarray(samples, np.float32).reshape(-1)
    if rate != RATE:
        from fractions import Fraction

        ratio = Fraction(RATE, rate)
        grid = np.arange(int(len(x) * ratio)) / float(ratio)
        x = np.interp(grid, np.arange(len(x)), x).astype(np.float32)
    vad = vad or SileroVad()
    return spans_from(vad.probabilities(x), len(x) / RATE, threshold=threshold)
