"""kinema tv's embedded default: a channel made from the user's own footage, no generative models.

``library_segments(library, theme, state=...)`` yields finished segments for ever: H.264 + AAC
``.mp4`` files of the channel's size and rate, each ``seconds`` long (exactly, in frames), a few
shots changing on the beats of music from the library, and a title naming the theme and the
files it shows. What it does, once per generator:

1. **Index.** The library's videos (as ``kinema index`` finds them) are split into shots
   (``detect_shots``, cached in the state folder by each file's stamp). When a CLIP model is on
   this machine the shots are also embedded into a LanceDB index in the state folder
   (``index_videos``, which skips unchanged files) and the theme's words order them, best match
   first (``search``). With no model (or no ``ml`` extra) the shots take a deterministic varied
   order seeded by the theme (:func:`kinema.search.rotation.varied_order`).
2. **Music.** The library's sound files (``.wav .mp3 .m4a .flac .ogg .opus .aac``), else the
   sound of its videos, with their beats (``song_beats``, cached), those at least a segment long
   and with a pulse. Segments take the songs in turn, each cut into consecutive stretches.
   With no music the segments keep the shots' own sound (or silence) and cut on a steady pulse.
3. **Each segment.** Cuts on beats at least ``shot_seconds`` apart (further apart when the
   library has few shots: a segment shows at most all of them but one, so the next one starts
   elsewhere), each filled by a distinct shot from the rotation (recently shown shots
   avoided, a shot continuing where it left off), built as a kinema project (layers scaled to
   fit, the music from its offset) and rendered with the normal renderer, written into
   ``state/segments/``.

The rotation and the music's place are saved in ``state/library.json`` after every segment, so
a restarted channel continues rather than starting over. Memory stays flat: one segment is made
at a time and nothing accumulates but files the caller may delete (``keep`` bounds them).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from kinema.core.errors import InvalidArgumentError, KinemaError, MissingExtraError, ModelNotFoundError
from kinema.core.jobs import run
from kinema.search.cutting import Cut, Piece
from kinema.search.rotation import Rotation, fewest_cuts, limit_spans, plan_segment, varied_order

log = logging.getLogger("kinema.tv")

AUDIO_EXTENSIONS = (".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus", ".aac")
STATE_FILE = "library.json"
PULSE = 0.5  # seconds between the beats segments cut on when the library has no music
MIX_RATE = 48000


@dataclass(frozen=True)
class Segment:
    """A finished segment: the movie, its length in seconds (exact), the title to show, the
    files it is made of (``sources``: the footage, in order of appearance; ``music`` or ``None``),
    the frames where it cuts (``cuts``, on beats) and the shots it shows (``shots``, one per cut:
    ``"FILE#FIRST_FRAME"``), all different."""

    path: Path
    duration: Fraction
    title: str
    sources: tuple[str, ...] = ()
    music: str | None = None
    cuts: tuple[int, ...] = ()
    shots: tuple[str, ...] = ()


@dataclass(frozen=True)
class Song:
    path: Path
    seconds: Fraction
    beats: tuple[float, ...]


def library_segments(library: str | os.PathLike[str], theme: str, *, seconds: float | Fraction = 30,
                     rate: Fraction | int = Fraction(30), size: tuple[int, int] = (1280, 720),
                     state: str | os.PathLike[str], model: Any = None, clip: bool = True,
                     shot_seconds: float = 2.0, keep: int | None = None) -> Iterator[Segment]:
    """Segments of a channel about ``theme`` made from the footage in ``library``, for ever.

    ``seconds`` is each segment's length, ``rate`` and ``size`` the channel's (even sizes);
    ``state`` a folder for the index, caches, the rotation and the segments. ``model`` is the
    CLIP model (folder, registry name or embedder; ``None``: the default) used when it is on
    this machine and ``clip`` is true. Shots last at least ``shot_seconds`` (longer when the
    library has too few shots for a segment). With ``keep`` only the newest ``keep`` segment
    files are left in ``state/segments``.
    """
    seconds, fps = Fraction(seconds).limit_denominator(100000), Fraction(rate)
    width, height = size
    if width % 2 or height % 2 or width < 16 or height < 16:
        raise InvalidArgumentError(f"the channel's size must be even and at least 16x16, "
                                   f"got {width}x{height}")
    if seconds * fps < 2:
        raise InvalidArgumentError("a segment must last at least two frames")
    if not theme.strip():
        raise InvalidArgumentError("the theme is empty", hint='give words, e.g. "city at night"')
    root = Path(state)
    (root / "segments").mkdir(parents=True, exist_ok=True)
    pieces = library_pieces(library, theme, root, model=model if clip else False)
    songs = library_music(library, root, seconds)
    saved = _load_state(root)
    rotation = Rotation.from_json(saved.get("rotation", {}))
    song_k, offset = int(saved.get("song", 0)), Fraction(saved.get("offset", "0"))
    while True:
        song = None
        if songs:
            song_k %= len(songs)
            if offset + seconds > songs[song_k].seconds:
                song_k, offset = (song_k + 1) % len(songs), Fraction(0)
            song = songs[song_k]
        beats = list(song.beats) if song else [float(k * PULSE) for k in range(1, int(seconds / PULSE) + 1)]
        start = offset if song else Fraction(0)
        # all but one of the shots at most, so consecutive segments differ in what and in order
        points = fewest_cuts(beats, start, seconds, fps, shot_frames=max(1, round(shot_seconds * fps)),
                             shots=len(pieces) - 1 if len(pieces) > 2 else len(pieces))
        points = limit_spans(points, max(int(Fraction(p.end - p.start) / p.rate * fps) for p in pieces))
        cuts, shown, rotation = plan_segment(pieces, points, fps, rotation)
        number = rotation.count
        target = root / "segments" / f"segment-{number:06d}.mp4"
        _render_segment(cuts, target, root, fps=fps, size=(width, height), music=song, start=start,
                        seconds=seconds)
        if song:
            offset += seconds
        _save_state(root, {"rotation": rotation.to_json(), "song": song_k, "offset": str(offset)})
        if keep:
            _prune(root / "segments", keep)
        sources = tuple(dict.fromkeys(c.source for c in cuts))
        music = song.path if song else None
        yield Segment(target, Fraction(points[-1]) / fps, segment_title(theme, sources, music), sources,
                      str(music) if music else None, tuple(points[1:-1]), tuple(shown))


def segment_title(theme: str, sources: Sequence[str], music: str | os.PathLike[str] | None) -> str:
    """``"THEME: a.mp4, b.mp4 · music: song.mp3"``."""
    title = f"{theme.strip()}: " + ", ".join(Path(s).name for s in sources)
    return title + (f" · music: {Path(music).name}" if music else "")


def library_pieces(library: str | os.PathLike[str], theme: str, state: Path, *,
                   model: Any = None) -> list[Piece]:
    """Every shot of the library's videos, in the channel's order: by CLIP similarity to
    ``theme`` when a model is here (``model=False``: never), else a varied order seeded by it."""
    from kinema.app.index_jobs import find_videos

    videos = _outside(find_videos([library]), state)
    if not videos:
        raise InvalidArgumentError("no videos in the library", path=library,
                                   hint="kinema tv --library needs a folder with .mp4 .mov .mkv .webm files")
    shots = _ShotCache(state / "shots.json")
    found: dict[str, tuple[Fraction, list[tuple[int, int]]]] = {}
    for video in videos:
        try:
            found[str(video)] = shots.get(video)
        except KinemaError as exc:
            log.warning("%s: left out of the channel: %s", video, exc.reason)
    shots.save()
    if not found:
        raise InvalidArgumentError("none of the library's videos can be read", path=library)
    pieces = [Piece(video, s, e, fps, order=k) for k, (video, (fps, ranges)) in enumerate(found.items())
              for s, e in ranges]
    videos = [Path(v) for v in found]
    ranked = None if model is False else _ranked_by_clip(pieces, videos, theme, state, model)
    return ranked if ranked is not None else varied_order(pieces, theme)


def _ranked_by_clip(pieces: list[Piece], videos: list[Path], theme: str, state: Path,
                    model: Any) -> list[Piece] | None:
    """``pieces`` best match first by the CLIP index in ``state/index``, or ``None`` when no model
    is on this machine."""
    from kinema.app.index_jobs import index_videos, search
    from kinema.models.registry import resolve
    from kinema.search.embed import Embedder

    try:
        if not isinstance(model, Embedder):
            resolve(model, task="embed")
        cache = _ShotCache(state / "shots.json")
        run(index_videos(videos, state / "index", model=model, shots=lambda v: cache.get(v)[1]))
        hits = search(state / "index", theme, top=max(10, len(pieces)), model=model)
    except (ModelNotFoundError, MissingExtraError) as exc:
        log.info("no CLIP model (%s): the library's shots play in a varied order", exc.reason)
        return None
    scores: dict[tuple[str, int], float] = {}
    for hit in hits:
        scores.setdefault((str(Path(hit.video).resolve()), hit.shot_start), hit.score)
    by_key = {(p.source, p.start): p for p in pieces}
    ranked = sorted(by_key, key=lambda k: (-scores.get(k, -2.0), by_key[k].order, k[1]))
    return [by_key[k] for k in ranked]


class _ShotCache:
    """Shots of videos by their stamp, kept in a JSON file: ``(fps, [(start, end), ...])``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.data = {}
        self.dirty = False

    def get(self, video: Path) -> tuple[Fraction, list[tuple[int, int]]]:
        from kinema.app.index_jobs import video_key
        from kinema.app.shot_jobs import detect_shots

        key = video_key(video)
        entry = self.data.get(str(video))
        if entry is None or entry.get("key") != key:
            found = detect_shots(video)
            entry = {"key": key, "fps": str(found.fps), "shots": [list(r) for r in found.ranges()]}
            self.data[str(video)] = entry
            self.dirty = True
            self.save()
        return Fraction(entry["fps"]), [(int(s), int(e)) for s, e in entry["shots"]]

    def save(self) -> None:
        if self.dirty:
            _write_json(self.path, self.data)
            self.dirty = False


def library_music(library: str | os.PathLike[str], state: Path, seconds: Fraction) -> list[Song]:
    """The library's songs at least ``seconds`` long with beats: its sound files, else the
    sound of its videos (sorted by path; beats cached in ``state/beats.json``)."""
    from kinema.app.edit_jobs import song_beats
    from kinema.app.index_jobs import _hidden_or_proxy, find_videos, video_key
    from kinema.media.probe import probe

    root = Path(library)
    files = sorted(p.resolve() for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS
                   and p.is_file() and not _hidden_or_proxy(p.relative_to(root)))
    files = _outside(files, state)
    if not files:
        files = [v for v in _outside(find_videos([root]), state) if _has_sound(v, probe)]
    cache_path = state / "beats.json"
    try:
        cache: dict[str, Any] = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    songs = []
    for path in files:
        try:
            key = video_key(path)
            entry = cache.get(str(path))
            if entry is None or entry.get("key") != key:
                found, length = song_beats(path)
                entry = {"key": key, "seconds": str(length),
                         "beats": [float(t) for t in found.times] if found.tempo else []}
                cache[str(path)] = entry
                _write_json(cache_path, cache)
        except (KinemaError, OSError) as exc:
            log.warning("%s: not used as music: %s", path, getattr(exc, "reason", exc))
            continue
        if Fraction(entry["seconds"]) >= seconds and len(entry["beats"]) >= 2:
            songs.append(Song(path, Fraction(entry["seconds"]), tuple(entry["beats"])))
    return songs


def _outside(paths: list[Path], state: Path) -> list[Path]:
    """``paths`` less those in the state folder (a state folder inside the library holds the
    channel's own segments, which are not footage)."""
    inside = state.resolve()
    return [p for p in paths if not p.resolve().is_relative_to(inside)]


def _has_sound(video: Path, probe: Any) -> bool:
    try:
        return bool(probe(video).audio)
    except (KinemaError, OSError):
        return False


def _render_segment(cuts: Sequence[Cut], target: Path, state: Path, *, fps: Fraction, size: tuple[int, int],
                    music: Song | None, start: Fraction, seconds: Fraction) -> None:
    from kinema.app.edit_jobs import build_project
    from kinema.app.render_job import render

    work = state / "work"
    work.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="segment-", dir=work) as tmp:
        folder = Path(tmp) / "segment.kinema"
        sound = music.path if music else None
        if sound is None and not _any_sound(cuts):
            sound = _silence(state, seconds)
        build_project(cuts, folder, fps=fps, size=size, name="segment", music=sound,
                      music_start=start if music else Fraction(0), source_sound=sound is None)
        run(render(folder, target, overwrite=True))


def _any_sound(cuts: Sequence[Cut]) -> bool:
    from kinema.media.probe import probe

    return any(_has_sound(Path(source), probe) for source in {c.source for c in cuts})


def _silence(state: Path, seconds: Fraction) -> Path:
    """A silent WAV at least ``seconds`` long: the sound of segments that have none."""
    path = state / "silence.wav"
    frames = int(seconds * MIX_RATE) + MIX_RATE
    try:
        with wave.open(str(path), "rb") as existing:
            if existing.getnframes() >= frames:
                return path
    except (OSError, wave.Error, EOFError):
        pass
    tmp = path.with_suffix(".tmp.wav")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(MIX_RATE)
        out.writeframes(bytes(2 * frames))
    os.replace(tmp, path)
    return path


def _load_state(root: Path) -> dict[str, Any]:
    try:
        return json.loads((root / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _save_state(root: Path, data: dict[str, Any]) -> None:
    _write_json(root / STATE_FILE, data)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _prune(folder: Path, keep: int) -> None:
    for old in sorted(folder.glob("segment-*.mp4"))[:-keep]:
        old.unlink(missing_ok=True)
        old.with_name(old.name + ".provenance.json").unlink(missing_ok=True)
