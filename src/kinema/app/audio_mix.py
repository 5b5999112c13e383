"""Mix a timeline's audio tracks into one stereo buffer for a render."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from kinema.app.evaluate import media_paths
from kinema.core.errors import MediaOpenError
from kinema.document.model import Project

MIX_RATE = 48000


def mix_audio(project: Project, folder: Path, begin: int, end: int,
              rate: int = MIX_RATE) -> np.ndarray | None:
    """Timeline frames ``[begin, end)`` of every unmuted audio track summed with its gain, as
    float32 ``(2, n)`` at ``rate`` (clipped to [-1, 1]); ``None`` when nothing is audible."""
    from kinema.media import open_video
    from kinema.media.audio import read_audio

    tl = project.timeline
    items = [(track, item) for track in tl.audio_tracks if not track.muted for item in track.items]
    if not items:
        return None
    paths, missing = media_paths(project, folder)
    count = int(round(Fraction(end - begin) / tl.rate * rate))
    mix = np.zeros((2, count), np.float32)
    for track, item in items:
        length = int(item.source_range.duration.seconds * tl.rate)
        a, b = max(item.start, begin), min(item.start + length, end)
        if a >= b or not project.media[item.media_id].has_audio:
            continue
        if item.media_id in missing:
            raise MediaOpenError(f"sound on track {track.name!r} needs missing media "
                                 f"{project.media[item.media_id].path}", path=folder,
                                 hint="relink it, or mute the track")
        path = paths[item.media_id]
        origin = Fraction(0)
        if project.media[item.media_id].width:  # a video: its sound lines up with its first frame
            with open_video(path, prefetch=False) as reader:
                origin = reader.start_time
        seconds = origin + item.source_range.start_time.seconds + Fraction(a - item.start) / tl.rate
        samples = read_audio(path, seconds, Fraction(b - a) / tl.rate, rate=rate)
        at = int(round(Fraction(a - begin) / tl.rate * rate))
        n = min(samples.shape[1], count - at)
        mix[:, at:at + n] += samples[:, :n] * np.float32(10 ** (track.gain_db / 20))
    return np.clip(mix, -1.0, 1.0, out=mix)
