"""``kinema tv``: a channel that never stops, written, filmed, scored and streamed.

Two threads share a :class:`~kinema.broadcast.playlist.Playlist` kept in the state folder.
The maker fills it with finished segments, staying :attr:`ChannelSpec.ahead` seconds ahead of
the air and waiting when it is; the broadcaster (:class:`~kinema.broadcast.live.Broadcaster`)
plays it to RTMP and/or HLS in real time, repeating segments already made when the maker falls
behind, so the stream never stalls. A restart on the same state folder continues the channel.

Segments come from one of two makers:

- **generated** (:func:`generated_segments`): the theme becomes a shot list (an LLM, an
  OpenAI-compatible endpoint, or the template writer), each shot a clip from words
  (text-to-video), upscaled towards the channel's size and interpolated to its rate, scored
  with MusicGen for the shot's mood (loudness-normalised, crossfading into the next shot's
  music) and muxed. A shot that fails is logged and skipped; the channel goes on.
- **the library** (:func:`kinema.app.tv_library.library_segments`): the user's own footage cut
  to the beat of their own music; it needs no model at all.

With ``serve`` an nginx with the RTMP module runs on 127.0.0.1 for the length of the channel,
taking the RTMP stream and serving the player page and the HLS folder over HTTP.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from kinema.core.errors import InvalidArgumentError, KinemaError

log = logging.getLogger("kinema.tv")

LOUDNESS = -16.0
"""The channel's loudness target (LUFS): streaming platforms' usual level."""


@dataclass(frozen=True)
class ChannelSpec:
    """What the channel is about and where its material comes from: ``library`` (own footage)
    or the models (``llm`` writes, ``t2v`` films, ``music`` scores; ``None``: the registry's
    defaults, the template writer for ``llm``); ``shots`` per shot list; ``ahead`` seconds
    made ahead of the air; ``segment_seconds`` for library segments; ``ray`` films the shots
    on a Ray cluster (:mod:`kinema.app.ray_pool`); ``remote`` (a ``kinema serve`` URL, with
    ``token``) films and upscales them on that worker, ``t2v`` naming a model there."""

    theme: str
    state: Path
    library: Path | None = None
    llm: str | None = None
    t2v: str | None = None
    music: str | None = None
    shots: int = 6
    seed: int = 0
    ahead: float = 120.0
    segment_seconds: float = 20.0
    device: str | None = None
    ray: bool = False
    remote: str | None = None
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Made:
    """A finished segment for the playlist."""

    path: Path
    duration: float
    title: str


@dataclass(frozen=True)
class ChannelResult:
    """How a run ended: the broadcaster's result and the segments made meanwhile."""

    broadcast: Any
    made: int
    skipped: int


def segments(spec: ChannelSpec, channel: Any) -> Iterator[Made]:
    """The channel's segments, for ever: from the library when given, else generated."""
    if spec.library is not None:
        from kinema.app.tv_library import library_segments

        for seg in library_segments(spec.library, spec.theme, seconds=spec.segment_seconds,
                                    rate=channel.fps, size=(channel.width, channel.height),
                                    state=spec.state / "library", keep=64):
            yield Made(Path(seg.path), float(seg.duration), seg.title)
        return
    yield from generated_segments(spec, channel)


class _Counts:
    made = 0
    skipped = 0


@dataclass(frozen=True)
class _Filmed:
    """A shot filmed and scored, waiting for the next one's music to crossfade into."""

    video: Path
    music: np.ndarray
    seconds: float
    title: str
    target: Path


def generated_segments(spec: ChannelSpec, channel: Any, counts: _Counts | None = None) -> Iterator[Made]:
    """Shot lists about the theme, one after another (a new seed each round), each shot filmed,
    upscaled, interpolated to the channel's rate and scored (with ``spec.ray``, by a pool of
    Ray actors each holding the models, in the shot lists' order). A shot's segment is
    finished when the next shot's music is there, so the music crossfades from one shot into
    the next over :data:`CROSSFADE` seconds (one shot of latency)."""
    counts = counts or _Counts()
    work = (spec.state / "made").resolve()  # Ray workers do not share this process's folder
    work.mkdir(parents=True, exist_ok=True)
    overlap = round(CROSSFADE * channel.sample_rate)
    film = partial(_film_shot, work, channel, overlap)
    if spec.ray:
        from kinema.app.ray_pool import map_actors

        results = map_actors(partial(_Films, spec), film, _shots(spec), ordered=True,
                             gpu=spec.device != "cpu")
    else:
        films = _Films(spec)
        results = ((job, film(films, job)) for job in _shots(spec))
    waiting: _Filmed | None = None
    for (name, shot, _seed), filmed in results:
        if isinstance(filmed, Exception):
            counts.skipped += 1
            log.warning("shot %s (%s) failed and is skipped: %s", name, shot.prompt, filmed)
            continue
        if waiting is not None:
            yield _finish(waiting, filmed.music[:, :overlap], channel, overlap)
            counts.made += 1
        waiting = filmed


ShotJob = tuple[str, Any, int]
"""A shot to film: ``(name, shot, seed)``."""


def _shots(spec: ChannelSpec) -> Iterator[ShotJob]:
    """The channel's shots, for ever: a shot list about the theme each round, a new seed each."""
    from kinema.generate.shotlist import write_shot_list, writer_for

    writer = writer_for(spec.llm)
    for round_ in range(1_000_000):
        shot_list = write_shot_list(spec.theme, writer=writer, shots=spec.shots,
                                    seed=spec.seed + round_)
        for k, shot in enumerate(shot_list.shots):
            yield f"r{round_:04d}-s{k:02d}", shot, spec.seed + round_ * 1000 + k


def _film_shot(work: Path, channel: Any, overlap: int, films: _Films, job: ShotJob) -> _Filmed | Exception:
    """One shot filmed into ``work`` by ``films`` (:meth:`_Films.film`), or the error that
    stopped it: returned, not raised, so one failed shot does not end a Ray actor pool's run."""
    name, shot, seed = job
    try:
        return films.film(shot, seed, work / name, channel, overlap)
    except (KinemaError, ValueError, RuntimeError) as exc:
        return exc


CROSSFADE = 1.0
"""Seconds over which one shot's music fades into the next's."""


def scored(music: np.ndarray, samples: int, next_head: np.ndarray, overlap: int) -> np.ndarray:
    """A segment's ``samples`` of sound from its shot's ``music`` (``overlap`` longer at its head,
    which the segment before faded in), its end crossfaded into the next shot's head."""
    from kinema.generate.music import crossfade

    body = music[:, overlap:overlap + samples]
    return crossfade(body, next_head, min(overlap, body.shape[-1], next_head.shape[-1]))


def _finish(filmed: _Filmed, next_head: np.ndarray, channel: Any, overlap: int) -> Made:
    """A filmed shot's segment: its pictures with its music crossfaded into the next shot's."""
    samples = round(filmed.seconds * channel.sample_rate)
    _mux(filmed.video, scored(filmed.music, samples, next_head, overlap), channel.sample_rate,
         filmed.target)
    return Made(filmed.target, filmed.seconds, filmed.title)


class _Films:
    """The models a generated channel runs, loaded once: text-to-video and MusicGen."""

    def __init__(self, spec: ChannelSpec) -> None:
        from kinema.generate.music import MusicGenerator

        self.spec = spec
        self.worker = self.folder = self.video = None
        if spec.remote is not None:
            from kinema.app.remote import RemoteWorker

            self.worker = RemoteWorker(spec.remote, spec.token)
        else:
            from kinema.app.t2v_jobs import BACKEND
            from kinema.models import backends
            from kinema.models.registry import resolve

            self.folder = resolve(spec.t2v, task="text-to-video")
            self.video = backends.create("t2v", BACKEND, model=self.folder, device=spec.device)
        self.music = MusicGenerator(spec.music, device=spec.device)
        self.upscaler = _upscaler()

    def film(self, shot: Any, seed: int, folder: Path, channel: Any, overlap: int) -> _Filmed:
        """One shot filmed in ``folder`` (its clip, the upscale and the interpolation) and
        scored: music for its length and ``overlap`` samples more at each end, at the channel's
        rate and loudness."""
        from kinema.app.restore_jobs import interpolate_video
        from kinema.core.jobs import run
        from kinema.generate.music import music_prompt, normalise_loudness, to_channel

        folder.mkdir(parents=True, exist_ok=True)
        clip, height = self._clip(shot.video_prompt(), seed, folder / "clip.mp4")
        scale = min(4, -(-channel.height // height))
        upscaled = self._upscale(clip, folder / "upscaled.mp4", scale) if scale > 1 else clip
        smooth = run(interpolate_video(upscaled, folder / "smooth.mp4", fps=Fraction(channel.fps),
                                       overwrite=True))
        seconds = float(smooth.frames / Fraction(channel.fps))
        extra = 2 * overlap / channel.sample_rate
        piece = self.music(music_prompt(shot.mood, self.spec.theme), seconds + extra,
                           seed=seed)
        sound = normalise_loudness(to_channel(piece, self.music.rate, out_rate=channel.sample_rate),
                                   channel.sample_rate, LOUDNESS)
        return _Filmed(folder / "smooth.mp4", sound, seconds, shot.prompt, folder.with_suffix(".mp4"))

    def _clip(self, prompt: str, seed: int, out: Path) -> tuple[Path, int]:
        """The shot's clip at ``out`` (here, or on the worker) and its height."""
        from kinema.app.t2v_jobs import ClipSettings, make_clip
        from kinema.core.jobs import run

        settings = ClipSettings(prompt=prompt, seed=seed)
        if self.worker is None:
            clip = run(make_clip(settings, out, model=self.folder, generator=self.video,
                                 overwrite=True))
            return out, clip.size[1]
        from kinema.app.remote_calls import t2v_remote
        from kinema.media import open_video

        run(t2v_remote(self.worker, settings, out, model=self.spec.t2v, overwrite=True))
        with open_video(out, prefetch=False) as reader:
            return out, reader.size[1]

    def _upscale(self, clip: Path, out: Path, scale: int) -> Path:
        """``clip`` ``scale`` times larger at ``out`` (here, or on the worker)."""
        from kinema.core.jobs import run

        if self.worker is None:
            from kinema.app.restore_jobs import upscale_media

            run(upscale_media(clip, out, scale=scale, model=self.upscaler, overwrite=True))
        else:
            from kinema.app.remote_calls import upscale_remote

            run(upscale_remote(self.worker, clip, out, scale=scale, model=self.upscaler,
                               overwrite=True))
        return out


def _upscaler() -> str:
    """Real-ESRGAN when its bundled weights are here and whole, else Lanczos."""
    from kinema.models.bundled import bundle_problems

    return "lanczos" if bundle_problems("realesrgan") else "x4plus"


def _mux(video: Path, sound: np.ndarray, rate: int, target: Path) -> None:
    """``video``'s frames with ``sound`` (``(2, n)`` float32 at ``rate``) into ``target``."""
    from kinema.media import open_video
    from kinema.media.writer import VideoWriter

    with open_video(video, prefetch=False) as reader, VideoWriter(
            target, reader.fps, reader.size, audio_samples=sound, audio_rate=rate,
            overwrite=True) as writer:
        for frame in reader.frames():
            writer.write(np.asarray(frame)[..., :3])


def check_spec(spec: ChannelSpec) -> None:
    """Everything a channel needs, before any thread starts: a theme, a state folder it can
    write, and a source (the library, or the text-to-video and music models)."""
    if not spec.theme.strip():
        raise InvalidArgumentError("the theme is empty",
                                   hint='say what the channel is about: kinema tv "..."')
    if spec.shots < 1 or spec.ahead <= 0 or spec.segment_seconds <= 0:
        raise InvalidArgumentError("--shots, the time ahead and the segment length must be positive")
    if spec.library is not None and (spec.ray or spec.remote):
        raise InvalidArgumentError("--ray and --remote film generated shots; a --library "
                                   "channel has none",
                                   hint="drop them, or --library to generate the channel")
    if spec.ray and spec.remote:
        raise InvalidArgumentError("film the shots on Ray or on a remote worker, not both",
                                   hint="a worker can use Ray itself: kinema serve --ray")
    if spec.library is not None and not spec.library.is_dir():
        from kinema.core.errors import MediaOpenError

        raise MediaOpenError("library folder not found", path=spec.library,
                             hint="give a folder of your videos (and music)")
    if spec.library is None:
        from kinema.models.registry import resolve

        if spec.remote is None:
            resolve(spec.t2v, task="text-to-video")
        else:
            from kinema.app.remote_calls import model_name

            model_name(spec.t2v, "--t2v")
        resolve(spec.music, task="music")


def run_channel(spec: ChannelSpec, *, rtmp: str | None = None, hls: Path | None = None,
                serve: int | None = None, max_seconds: float | None = None,
                stop: threading.Event | None = None, realtime: bool = True, channel: Any = None,
                ready: float = 0.0, on_segment: Callable[[Any], None] | None = None) -> ChannelResult:
    """Run the channel until ``stop`` is set (or ``max_seconds`` of stream): the maker on a
    thread, the broadcaster on this one, on air once ``ready`` seconds are made (until then,
    and whenever nothing was ever made, it shows a slate); with ``serve`` (an HTTP port) an
    nginx-rtmp on 127.0.0.1 takes the RTMP stream (when no ``rtmp`` URL is given) and serves
    the page and ``hls`` (default ``STATE/hls``). Nothing is left running when it returns."""
    from contextlib import ExitStack

    from kinema.broadcast.live import Broadcaster, ChannelFormat
    from kinema.broadcast.playlist import Playlist

    check_spec(spec)
    if spec.ray:  # a cluster that is not there is an error now, not a maker stopped later
        from kinema.app.ray_pool import connect

        connect()
    if spec.remote is not None:  # nor a worker that is not there (or refuses the token)
        from kinema.app.remote import RemoteWorker

        with RemoteWorker(spec.remote, spec.token) as worker:
            worker.has_blob("0" * 64)
    spec.state.mkdir(parents=True, exist_ok=True)
    channel = channel or ChannelFormat()
    stop = stop or threading.Event()
    counts = _Counts()
    with ExitStack() as stack:
        stack.callback((_lock(spec.state)).unlink, missing_ok=True)
        playlist = Playlist(spec.state)
        if serve is not None:
            from kinema.broadcast.nginx import NginxRtmp
            from kinema.broadcast.web import PAGE_DIR

            hls = hls or spec.state / "hls"
            server = stack.enter_context(NginxRtmp(http_port=serve, http_root=PAGE_DIR, hls_dir=hls))
            rtmp = rtmp or server.url()
        if rtmp is None and hls is None:
            raise InvalidArgumentError("the channel goes nowhere",
                                       hint="give --rtmp URL, --hls DIR or --serve PORT")
        maker = threading.Thread(target=_make, args=(spec, channel, playlist, stop, counts),
                                 name="kinema-tv-maker", daemon=True)
        maker.start()
        try:
            while playlist.queued_seconds() < ready and maker.is_alive() and not stop.wait(0.2):
                pass
            broadcaster = Broadcaster(playlist, rtmp=rtmp, hls=hls, stop_event=stop, channel=channel,
                                      realtime=realtime, max_seconds=max_seconds, on_segment=on_segment)
            result = broadcaster.run()
        finally:
            stop.set()
            maker.join()
    return ChannelResult(result, counts.made, counts.skipped)


def _lock(state: Path) -> Path:
    """The state folder's lock: one channel at a time writes it."""
    from kinema.core.errors import ProjectLockedError
    from kinema.core.locks import acquire

    def locked(holder: dict[str, object]) -> Exception:
        return ProjectLockedError(f"is the state of a channel running in pid {holder.get('pid')} "
                                  f"on {holder.get('host')}", path=state,
                                  hint="stop that channel first, or give another --state")

    return acquire(state / "LOCK", locked)


def _make(spec: ChannelSpec, channel: Any, playlist: Any, stop: threading.Event, counts: _Counts) -> None:
    """The maker thread: segments into the playlist, staying ``ahead`` seconds ahead."""
    try:
        source = (segments(spec, channel) if spec.library is not None
                  else generated_segments(spec, channel, counts))
        for made in source:
            if spec.library is not None:
                counts.made += 1
            playlist.add(made.path, duration=made.duration, title=made.title)
            while playlist.queued_seconds() >= spec.ahead:
                if stop.wait(0.5):
                    return
            if stop.is_set():
                return
    except Exception as exc:  # the air goes on with what was made; the cause is logged
        log.error("the channel's maker stopped: %s", exc)


def channel_status(state: str | os.PathLike[str]) -> Any:
    """On air now, the queue, and how far ahead or behind the maker is."""
    from kinema.broadcast.playlist import Playlist

    folder = Path(state)
    if not folder.is_dir():
        from kinema.core.errors import MediaOpenError

        raise MediaOpenError("channel state folder not found", path=folder,
                             hint="give the --state folder of a kinema tv run")
    return Playlist(folder).status()
