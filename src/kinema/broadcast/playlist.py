"""A channel's rolling playlist, kept in a state folder so a restart continues the channel.

Finished segments (short movie files with their duration and the prompt or title of their shot)
join a queue with :meth:`Playlist.add`; the broadcaster asks :meth:`Playlist.next` for what to
play, calls :meth:`Playlist.started` when it goes on air and :meth:`Playlist.finished` when it
has played to its end. When the queue is empty (generation has fallen behind) ``next`` repeats
the segment that was aired least recently, so the stream never stalls. A segment that was on
air when the program stopped (or the server dropped) is played again first: nothing is lost
from the queue.

Everything is in ``STATE/playlist.json``, rewritten atomically after every change
(:func:`kinema.core.atomic.atomic_write_bytes`), so readers (``kinema tv status``) see the old
state or the new one, and a full disk leaves the last good state in place. Paths inside the
state folder are stored relative to it, so the folder can move.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kinema.core.atomic import atomic_write_bytes
from kinema.core.errors import InvalidArgumentError, KinemaError

log = logging.getLogger(__name__)

STATE_FILE = "playlist.json"
FORMAT = 1
HISTORY_LIMIT = 500


class PlaylistError(KinemaError, ValueError):
    """The state folder holds a playlist kinema cannot read."""


@dataclass
class Segment:
    """One finished segment: a movie file, its length in seconds and its shot's title."""

    id: str
    path: str
    duration: float
    title: str = ""
    added: float = 0.0
    aired: int = 0
    last_aired: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        known = {k: data[k] for k in ("id", "path", "duration", "title", "added", "aired",
                                      "last_aired", "extra") if k in data}
        return cls(**known)


@dataclass
class OnAir:
    segment: str
    started: float  # wall-clock seconds (time.time()) when it went on air
    repeat: bool = False


@dataclass
class PlaylistStatus:
    """What ``kinema tv status`` shows: on air now, the queue, and how far ahead we are."""

    on_air: dict[str, Any] | None
    queue: list[dict[str, Any]]
    ahead_s: float     # seconds of new material ready after now (rest of on-air + queue)
    behind_s: float    # seconds spent repeating old segments since the queue ran dry
    segments: int      # segments known (the repeat pool)
    aired: int         # segments played to their end, ever

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Playlist:
    """The rolling playlist of a channel, persisted in ``state_dir``.

    Thread-safe: generation adds segments from one thread while the broadcaster takes them on
    another. ``clock`` (wall-clock seconds) is replaceable for tests.
    """

    def __init__(self, state_dir: str | os.PathLike[str], *, clock: Any = time.time) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._lock = threading.RLock()
        self.segments: dict[str, Segment] = {}
        self.queue: list[str] = []
        self.on_air: OnAir | None = None
        self.history: list[dict[str, Any]] = []
        self.aired_total = 0
        self.repeating_since: float | None = None
        # Seconds of stream written so far, so a restarted broadcaster continues its timestamps.
        self.stream_time = 0.0
        self._load()

    # -- persistence -----------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    def _load(self) -> None:
        try:
            text = self.state_file.read_text()
        except FileNotFoundError:
            return
        try:
            data = json.loads(text)
            self.segments = {s["id"]: Segment.from_dict(s) for s in data.get("segments", [])}
            self.queue = [i for i in data.get("queue", []) if i in self.segments]
            on_air = data.get("on_air")
            self.on_air = OnAir(**on_air) if on_air and on_air.get("segment") in self.segments else None
            self.history = list(data.get("history", []))[-HISTORY_LIMIT:]
            self.aired_total = int(data.get("aired_total", len(self.history)))
            self.repeating_since = data.get("repeating_since")
            self.stream_time = float(data.get("stream_time", 0.0))
        except (ValueError, TypeError, KeyError) as exc:
            raise PlaylistError(f"cannot read the playlist: {exc}", path=self.state_file,
                                hint="move the file away to start the channel afresh") from exc

    def save(self) -> None:
        """Write the state atomically (an OSError, e.g. a full disk, leaves the old file)."""
        with self._lock:
            data = {
                "format": FORMAT,
                "segments": [asdict(s) for s in self.segments.values()],
                "queue": list(self.queue),
                "on_air": asdict(self.on_air) if self.on_air else None,
                "history": self.history[-HISTORY_LIMIT:],
                "aired_total": self.aired_total,
                "repeating_since": self.repeating_since,
                "stream_time": self.stream_time,
                "saved": self.clock(),
            }
            atomic_write_bytes(self.state_file, json.dumps(data, indent=1).encode())

    def _stored_path(self, path: Path) -> str:
        path = path.absolute()
        try:
            return str(path.relative_to(self.state_dir))
        except ValueError:
            return str(path)

    def path_of(self, segment: Segment) -> Path:
        p = Path(segment.path)
        return p if p.is_absolute() else self.state_dir / p

    # -- the queue -------------------------------------------------------------------------

    def add(self, path: str | os.PathLike[str], *, duration: float | None = None,
            title: str = "", extra: dict[str, Any] | None = None) -> Segment:
        """Queue a finished segment (its duration is probed when not given)."""
        p = Path(path)
        if not p.is_file():
            raise InvalidArgumentError("is not a file", path=p, hint="add finished segments only")
        if duration is None:
            duration = probe_duration(p)
        if not duration or duration <= 0:
            raise InvalidArgumentError("has no duration", path=p, hint="is it a finished movie?")
        seg = Segment(id=uuid.uuid4().hex[:12], path=self._stored_path(p), duration=float(duration),
                      title=title, added=self.clock(), extra=dict(extra or {}))
        with self._lock:
            self.segments[seg.id] = seg
            self.queue.append(seg.id)
            self.save()
        return seg

    def next(self) -> Segment | None:
        """The segment to play now: the one still on air (after a restart or a dropped
        server), else the head of the queue, else a repeat of the least recently aired one;
        None when the playlist has no playable segment at all."""
        with self._lock:
            if self.on_air is not None:
                seg = self.segments[self.on_air.segment]
                if self.path_of(seg).is_file():
                    return seg
                self.on_air = None
            while self.queue:
                seg = self.segments[self.queue[0]]
                if self.path_of(seg).is_file():
                    return seg
                log.warning("segment %s is gone; dropped from the playlist", self.path_of(seg))
                self._forget(seg.id)
            pool = [s for s in self.segments.values() if self.path_of(s).is_file()]
            for gone in [s for s in self.segments.values() if s not in pool]:
                log.warning("segment %s is gone; dropped from the playlist", self.path_of(gone))
                self._forget(gone.id)
            if not pool:
                return None
            # Least recently aired first; never aired before everything aired; then oldest.
            return min(pool, key=lambda s: (s.last_aired if s.last_aired is not None else -1.0,
                                            s.added))

    def _forget(self, seg_id: str) -> None:
        self.segments.pop(seg_id, None)
        self.queue = [i for i in self.queue if i != seg_id]

    def drop(self, segment: Segment) -> None:
        """Forget a segment that cannot be played (unreadable file); the channel goes on."""
        with self._lock:
            self._forget(segment.id)
            if self.on_air is not None and self.on_air.segment == segment.id:
                self.on_air = None
            self.save()

    def started(self, segment: Segment) -> None:
        """``segment`` went on air now (again, when it is the one already on air)."""
        with self._lock:
            now = self.clock()
            if self.on_air is not None and self.on_air.segment == segment.id:
                self.on_air.started = now
            else:
                repeat = segment.id not in self.queue
                if segment.id in self.queue:
                    self.queue.remove(segment.id)
                    self.repeating_since = None
                elif self.repeating_since is None:
                    self.repeating_since = now
                self.on_air = OnAir(segment=segment.id, started=now, repeat=repeat)
            self.save()

    def finished(self, segment: Segment) -> None:
        """``segment`` played to its end: it leaves the air and joins the history."""
        with self._lock:
            now = self.clock()
            started = self.on_air.started if self.on_air and self.on_air.segment == segment.id else now
            repeat = bool(self.on_air.repeat) if self.on_air else False
            self.on_air = None
            if segment.id in self.segments:
                s = self.segments[segment.id]
                s.aired += 1
                s.last_aired = now
            self.history.append({"segment": segment.id, "title": segment.title,
                                 "started": started, "ended": now, "repeat": repeat})
            self.history = self.history[-HISTORY_LIMIT:]
            self.aired_total += 1
            self.save()

    # -- reading ---------------------------------------------------------------------------

    def status(self) -> PlaylistStatus:
        with self._lock:
            now = self.clock()
            on_air = None
            remaining = 0.0
            if self.on_air is not None:
                seg = self.segments[self.on_air.segment]
                elapsed = max(0.0, now - self.on_air.started)
                remaining = max(0.0, seg.duration - elapsed)
                on_air = {"id": seg.id, "title": seg.title, "path": str(self.path_of(seg)),
                          "duration": seg.duration, "started": self.on_air.started,
                          "elapsed": round(elapsed, 3), "repeat": self.on_air.repeat}
            queue = [{"id": s.id, "title": s.title, "path": str(self.path_of(s)),
                      "duration": s.duration}
                     for s in (self.segments[i] for i in self.queue)]
            ahead = (0.0 if self.on_air is not None and self.on_air.repeat else remaining) \
                + sum(q["duration"] for q in queue)
            behind = max(0.0, now - self.repeating_since) if self.repeating_since is not None else 0.0
            return PlaylistStatus(on_air=on_air, queue=queue, ahead_s=round(ahead, 3),
                                  behind_s=round(behind, 3), segments=len(self.segments),
                                  aired=self.aired_total)

    def queued_seconds(self) -> float:
        """Seconds of new material waiting (generation keeps this above a few minutes)."""
        with self._lock:
            return sum(self.segments[i].duration for i in self.queue)


def probe_duration(path: Path) -> float:
    """A movie file's duration in seconds (its container's, else its longest stream's)."""
    import av

    try:
        with av.open(str(path)) as container:
            if container.duration:
                return container.duration / 1_000_000
            best = 0.0
            for s in container.streams:
                if s.duration and s.time_base:
                    best = max(best, float(s.duration * s.time_base))
            return best
    except av.error.FFmpegError as exc:
        raise InvalidArgumentError(f"cannot be read as a movie: {exc}", path=path) from exc
