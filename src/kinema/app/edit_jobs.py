"""Edits made from footage: highlight reels, summaries and beat cuts, as kinema projects.

Every edit is planned (``kinema.search.cutting``), then built as a project: one layer per
source video (scaled to fit the frame), the cuts laid end to end, and the sound (the sources'
own, or the music). The project renders with the normal renderer (so it gets audio mixing,
chunks and provenance) and exports to OpenTimelineIO like any other.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from kinema.core.errors import InvalidArgumentError
from kinema.core.jobs import Steps
from kinema.core.timebase import to_fraction
from kinema.document import store
from kinema.document.model import AudioTrack, ClipItem, MediaRef, Project, Timeline, VideoLayer
from kinema.document.timing import RationalTime, TimeRange
from kinema.search.beats import Beats
from kinema.search.cutting import Cut, Piece, beat_cuts, fit_duration, most_relevant_diverse


@dataclass(frozen=True)
class EditOutput:
    """Where an edit goes: a movie, an OTIO timeline, a project folder (all optional but one)."""

    movie: Path | None = None
    timeline: Path | None = None
    project: Path | None = None
    overwrite: bool = False


def build_project(cuts: Sequence[Cut], folder: Path, *, fps: Fraction, size: tuple[int, int],
                  name: str, music: Path | None = None, music_start: Fraction = Fraction(0),
                  source_sound: bool = True, crossfade: int = 0) -> Path:
    """A project whose timeline is ``cuts`` end to end, each source's layer scaled to fit
    ``size``, with the sources' sound (or ``music``, an audio file or a video's sound, from
    ``music_start`` seconds). With ``crossfade`` each cut overlaps the one before by that many
    frames and dissolves in (A/B roll: the cuts alternate between two layers, the upper one's
    opacity ramps in and out), so the edit is that much shorter per join."""
    if crossfade:
        return _build_crossfaded(cuts, folder, fps=fps, size=size, name=name, crossfade=crossfade,
                                 source_sound=source_sound)
    from kinema.app.project_jobs import sound_facts

    media, ids = _media_refs(cuts, folder)
    layers: dict[str, VideoLayer] = {}
    sound: list[ClipItem] = []
    at = 0
    for k, cut in enumerate(cuts):
        ref = media[ids[cut.source]]
        seconds = Fraction(cut.frames) / fps
        rng = TimeRange(start_time=RationalTime(value=cut.start, rate=ref.rate),
                        duration=RationalTime(value=seconds * ref.rate, rate=ref.rate))
        item = ClipItem(id=f"c{k + 1}", media_id=ref.id, source_range=rng, start=at)
        layer = layers.get(ref.id)
        if layer is None:
            scale = min(size[0] / ref.width, size[1] / ref.height)
            layer = VideoLayer(id=f"l{len(layers) + 1}", name=Path(ref.path).stem)
            layer.transform.scale.value = (scale, scale)
            layers[ref.id] = layer
        layer.items.append(item)
        if source_sound and ref.has_audio:
            sound.append(item.model_copy(update={"id": f"a{k + 1}"}))
        at += cut.frames
    tracks = [AudioTrack(id="a1", name="A1", items=sound)] if sound else []
    if music is not None:
        from kinema.app.project_jobs import media_facts
        from kinema.media.probe import probe

        facts = media_facts(music) if probe(music).video is not None else sound_facts(music)
        ref = MediaRef(id="music", path=str(music.resolve()),
                       relative_path=os.path.relpath(music.resolve(), folder.resolve()), **facts)
        media[ref.id] = ref
        rng = TimeRange(start_time=RationalTime(value=music_start * ref.rate, rate=ref.rate),
                        duration=RationalTime(value=Fraction(at) / fps * ref.rate, rate=ref.rate))
        tracks = [AudioTrack(id="music", name="music", items=[ClipItem(id="music1", media_id="music",
                                                                        source_range=rng)])]
    project = Project(name=name, media=media, timeline=Timeline(
        rate=fps, width=size[0], height=size[1], duration=at, video_layers=list(layers.values()),
        audio_tracks=tracks))
    return store.create(folder, project)


def _media_refs(cuts: Sequence[Cut], folder: Path) -> tuple[dict[str, MediaRef], dict[str, str]]:
    from kinema.app.project_jobs import media_facts

    media: dict[str, MediaRef] = {}
    ids: dict[str, str] = {}
    for cut in cuts:
        if cut.source not in ids:
            ids[cut.source] = f"m{len(ids) + 1}"
            path = Path(cut.source).resolve()
            media[ids[cut.source]] = MediaRef(id=ids[cut.source], path=str(path),
                                              relative_path=os.path.relpath(path, folder.resolve()),
                                              **media_facts(path))
    return media, ids


def _build_crossfaded(cuts: Sequence[Cut], folder: Path, *, fps: Fraction, size: tuple[int, int], name: str,
                      crossfade: int, source_sound: bool) -> Path:
    from kinema.document.model import Keyframe

    media, ids = _media_refs(cuts, folder)
    sizes = {(m.width, m.height) for m in media.values()}
    if len(sizes) != 1:
        raise InvalidArgumentError("crossfades need footage of one picture size",
                                   hint="leave --crossfade out, or give clips of the same size")
    (width, height), = sizes
    scale = min(size[0] / width, size[1] / height)
    lanes = [VideoLayer(id="A", name="A"), VideoLayer(id="B", name="B")]
    sound = [AudioTrack(id="a1", name="A1"), AudioTrack(id="a2", name="A2")]
    fades: list[Keyframe] = []
    at = 0
    for k, cut in enumerate(cuts):
        if cut.frames <= 2 * crossfade:
            raise InvalidArgumentError(f"a {cut.frames}-frame shot cannot hold two {crossfade}-frame "
                                       "crossfades", hint="use a shorter --crossfade")
        ref = media[ids[cut.source]]
        seconds = Fraction(cut.frames) / fps
        rng = TimeRange(start_time=RationalTime(value=cut.start, rate=ref.rate),
                        duration=RationalTime(value=seconds * ref.rate, rate=ref.rate))
        item = ClipItem(id=f"c{k + 1}", media_id=ref.id, source_range=rng, start=at)
        lanes[k % 2].items.append(item)
        if source_sound and ref.has_audio:
            sound[k % 2].items.append(item.model_copy(update={"id": f"a{k + 1}"}))
        end = at + cut.frames
        if k % 2:  # the upper layer dissolves in over the lower one, and out again
            fades += [Keyframe(frame=at, value=0.0), Keyframe(frame=at + crossfade, value=1.0)]
            if k < len(cuts) - 1:
                fades += [Keyframe(frame=end - crossfade, value=1.0), Keyframe(frame=end, value=0.0)]
        at = end - crossfade
    duration = at + crossfade
    for lane in lanes:
        lane.transform.scale.value = (scale, scale)
    lanes[1].transform.opacity.value = 0.0
    lanes[1].transform.opacity.keyframes = fades
    project = Project(name=name, media=media, timeline=Timeline(
        rate=fps, width=size[0], height=size[1], duration=duration,
        video_layers=[lane for lane in lanes if lane.items],
        audio_tracks=[track for track in sound if track.items]))
    return store.create(folder, project)


def deliver(cuts: Sequence[Cut], output: EditOutput, *, fps: Fraction, size: tuple[int, int], name: str,
            music: Path | None = None, crossfade: int = 0) -> Steps[None]:
    """Build the edit's project (in ``output.project`` or a temporary folder), render it to
    ``output.movie`` and export its timeline to ``output.timeline``."""
    from kinema.app.interchange_jobs import export_timeline
    from kinema.app.render_job import render

    if output.movie is None and output.timeline is None and output.project is None:
        raise InvalidArgumentError("nowhere to put the edit",
                                   hint="give -o OUT.mp4, --otio OUT.otio or --project")
    with tempfile.TemporaryDirectory(prefix="kinema-edit-") as tmp:
        folder = store.project_path(output.project) if output.project else Path(tmp) / name
        build_project(cuts, folder, fps=fps, size=size, name=name, music=music, crossfade=crossfade)
        if output.timeline is not None:
            export_timeline(folder, output.timeline, overwrite=output.overwrite)
        if output.movie is not None:
            yield from render(folder, output.movie, overwrite=output.overwrite)


def even(size: tuple[int, int]) -> tuple[int, int]:
    """H.264 wants even sizes."""
    return size[0] - size[0] % 2, size[1] - size[1] % 2


def highlight_cuts(pieces: Sequence[Piece], seconds: Fraction, fps: Fraction, *,
                   order: str = "chronological", crossfade: int = 0) -> list[Cut]:
    """The best-matching pieces filling exactly ``seconds`` (with ``crossfade`` frames of
    overlap at each join taken into account)."""
    total = int(seconds * fps)
    cuts = fit_duration(pieces, total, fps, order=order, min_frames=max(12, 2 * crossfade + 1))
    for _ in range(8):  # every join eats `crossfade` frames: plan longer until it balances
        wanted = total + (len(cuts) - 1) * crossfade
        if sum(c.frames for c in cuts) == wanted:
            return cuts
        cuts = fit_duration(pieces, wanted, fps, order=order, min_frames=max(12, 2 * crossfade + 1))
    raise InvalidArgumentError("could not fit the crossfaded reel to the duration",
                               hint="try another --crossfade or --duration")


def check_crossfade(videos: Sequence[str | os.PathLike[str]], crossfade: Fraction,
                    duration: Fraction) -> None:
    """Refuse a ``crossfade`` (seconds) that cannot work before any footage is analysed:
    negative, too long for a reel of ``duration`` (it needs two shots, each longer than two
    crossfades), or over footage of more than one picture size."""
    from kinema.media.probe import probe

    if crossfade < 0:
        raise InvalidArgumentError(f"--crossfade cannot be negative, got {float(crossfade)}")
    if not crossfade or not videos:
        return
    infos = [info for info in (probe(video).video for video in videos) if info is not None]
    if len(infos) < len(videos):
        return  # not footage: finding its shots says so
    fps = to_fraction(infos[0].fps)
    shortest = 3 * int(round(crossfade * fps)) + 2
    if int(duration * fps) < shortest:
        raise InvalidArgumentError(f"a {float(crossfade):g} s crossfade needs a reel of at least "
                                   f"{float(shortest / fps):.3f} s: two shots, each longer than two "
                                   "crossfades", hint="use a shorter --crossfade or a longer --duration")
    if len({(info.width, info.height) for info in infos}) > 1:
        raise InvalidArgumentError("crossfades need footage of one picture size",
                                   hint="leave --crossfade out, or give clips of the same size")


def summary_cuts(pieces: Sequence[Piece], embeddings: np.ndarray, seconds: Fraction,
                 fps: Fraction) -> list[Cut]:
    """Relevant and diverse pieces (maximal marginal relevance: relevance is closeness to the
    footage's overall content) filling exactly ``seconds``, in story order."""
    centre = embeddings.mean(axis=0)
    centre /= max(float(np.linalg.norm(centre)), 1e-9)
    relevance = embeddings @ centre
    ranked = most_relevant_diverse(embeddings, relevance)
    scored = [Piece(p.source, p.start, p.end, p.rate, score=float(len(ranked) - rank), order=p.order)
              for rank, p in sorted(((ranked.index(i), pieces[i]) for i in range(len(pieces))),
                                    key=lambda pair: pair[0])]
    return fit_duration(scored, int(seconds * fps), fps, order="chronological")


def music_beat_cuts(beats: Sequence[float], seconds: Fraction, pieces: Sequence[Piece], fps: Fraction,
                    *, every: int = 1) -> list[Cut]:
    """Cuts on the music's beats for ``seconds`` of it."""
    if not len(beats):
        raise InvalidArgumentError("the music has no beats to cut on",
                                   hint="it is silent or has no pulse: give a song with a beat")
    return beat_cuts(beats, seconds, pieces, fps, every=every)


def song_beats(path: str | os.PathLike[str]) -> tuple[Beats, Fraction]:
    """The beats of a music file (any container with sound) and its length in seconds."""
    from kinema.media.audio import read_audio
    from kinema.media.probe import probe
    from kinema.search.beats import find_beats

    info = probe(path)
    if not info.audio:
        raise InvalidArgumentError("has no sound to find beats in", path=path)
    seconds = Fraction(info.audio[0].duration or info.duration or 0).limit_denominator(48000)
    rate = 22050
    samples = read_audio(path, Fraction(0), seconds, rate=rate, channels=1)[0]
    return find_beats(samples, rate), seconds


def shot_pieces(videos: Sequence[str | os.PathLike[str]], *, embedder: object | None = None,
                query: str | None = None) -> tuple[list[Piece], np.ndarray | None, Fraction, tuple[int, int]]:
    """Every shot of ``videos`` as a :class:`Piece` in footage order, and (with ``embedder``)
    one embedding per shot (the mean of its sampled frames, normalised); with ``query`` each
    piece is scored by its best frame's similarity to the words. Also the first video's rate
    and size, which the edit takes."""
    from kinema.app.index_jobs import embed_video
    from kinema.app.shot_jobs import detect_shots

    if not videos:
        raise InvalidArgumentError("no footage given")
    pieces: list[Piece] = []
    vectors: list[np.ndarray] = []
    fps, size = Fraction(0), (0, 0)
    target = embedder.texts([query])[0] if embedder is not None and query else None  # type: ignore[attr-defined]
    for order, video in enumerate(videos):
        found = detect_shots(video)
        if order == 0:
            from kinema.media import open_video

            fps = found.fps
            with open_video(video, prefetch=False) as reader:
                size = even(reader.size)
        by_shot: dict[tuple[int, int], list[np.ndarray]] = {}
        if embedder is not None:
            rows, _ = embed_video(Path(video), embedder, shots=lambda _v, f=found: f.ranges(),  # type: ignore[arg-type]
                                  samples_per_shot=3, thumbnails=False)
            for row in rows:
                by_shot.setdefault((row["shot_start"], row["shot_end"]), []).append(np.asarray(row["vector"]))
        for k, shot in enumerate(found.shots):
            samples = by_shot.get((shot.start, shot.end), [])
            score = max(float(v @ target) for v in samples) if samples and target is not None else 0.0
            pieces.append(Piece(str(Path(video).resolve()), shot.start, shot.end, found.fps, score=score,
                                order=order * 100000 + k))
            if embedder is not None:
                mean = np.mean(samples, axis=0) if samples else np.zeros(embedder.dim, np.float32)  # type: ignore[attr-defined]
                vectors.append(mean / max(float(np.linalg.norm(mean)), 1e-9))
    return pieces, (np.stack(vectors) if vectors else None), fps, size
