"""On air: finished segments, in playlist order, become one continuous live stream.

:class:`Broadcaster` takes each segment the :class:`~kinema.broadcast.playlist.Playlist` gives
it, decodes it and re-encodes it to the channel's fixed format (:class:`ChannelFormat`: one
frame size, one frame rate, 48 kHz stereo AAC), so every segment joins the stream with
timestamps that only go forward, whatever its own size, rate or sound. Pictures of another
shape are letterboxed; a segment without sound gets silence; its sound is padded or cut to its
pictures' length so sound and picture never drift apart.

It encodes once and muxes the same packets twice:

* to RTMP as FLV (``rtmp://127.0.0.1:PORT/live/NAME``, e.g. the nginx of
  :mod:`kinema.broadcast.nginx`). When the server drops, the broadcaster reconnects with
  exponential backoff (``backoff`` seconds, doubling up to ``backoff_max``) and starts the
  new connection on a keyframe. With RTMP as the only output the channel waits for the server
  and the segment on air plays again from its start, so nothing from the queue is lost; with
  HLS too the channel keeps running on HLS and RTMP rejoins it live.
* to HLS in a folder (FFmpeg's ``hls`` muxer: ``index.m3u8`` and rolling ``.ts`` segments of
  about ``hls_time`` seconds, the oldest deleted, ``hls_list_size`` listed). Beside it,
  ``now.json`` names the segment on air and the last few (title, start in stream seconds,
  wall-clock time) for the page that shows the prompt of the shot on air.

Output is paced to real time (``realtime=True``), so a live server is fed at 1x. ``run()``
returns when ``stop_event`` is set (after the frame in hand: the segment on air stays on air in
the state and plays again at the next start), or on a full disk (an ``OSError`` ENOSPC while
writing HLS, now.json or the state): it then closes what it can and returns with
``reason="disk-full"``, the playlist's last good state intact on disk.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from kinema.broadcast.playlist import Playlist, Segment
from kinema.core.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

GLOBAL_HEADER = 1 << 22  # AV_CODEC_FLAG_GLOBAL_HEADER: extradata for FLV, shared by both muxers
NOW_FILE = "now.json"
AUDIO_FRAME = 1024


@dataclass(frozen=True)
class ChannelFormat:
    """The one format every segment is re-encoded to."""

    width: int = 1280
    height: int = 720
    fps: int = 25
    sample_rate: int = 48000
    video_bitrate: int = 2_500_000
    audio_bitrate: int = 128_000
    keyframe_seconds: float = 2.0
    preset: str = "veryfast"

    @property
    def gop(self) -> int:
        return max(1, round(self.keyframe_seconds * self.fps))


@dataclass
class BroadcastResult:
    reason: str                 # "stopped", "disk-full", "empty" (nothing to play), "max-duration"
    seconds: float = 0.0        # stream seconds written
    segments: int = 0           # segments played to their end
    reconnects: int = 0         # successful RTMP reconnections
    error: str | None = None
    titles: list[str] = field(default_factory=list)


class _Restart(Exception):
    """The RTMP output came back after an outage: play the segment on air from its start."""


class _Stop(Exception):
    def __init__(self, reason: str, error: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


def is_disk_full(exc: BaseException) -> bool:
    """An OSError (or one it was raised from) that says the disk or quota is full."""
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _RtmpOutput:
    """An FLV connection to an RTMP server that comes back after the server drops."""

    def __init__(self, url: str, template_v: Any, template_a: Any, *, backoff: float,
                 backoff_max: float) -> None:
        self.url = url
        self.templates = (template_v, template_a)
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.container: Any = None
        self.streams: tuple[Any, Any] | None = None
        self.delay = backoff
        self.next_try = 0.0
        self.connects = 0
        self.need_keyframe = True
        self.waiting_keyframe = True

    @property
    def up(self) -> bool:
        return self.container is not None

    def connect(self) -> bool:
        import av

        container = None
        try:
            container = av.open(self.url, mode="w", format="flv")
            streams = tuple(container.add_stream_from_template(t) for t in self.templates)
            container.start_encoding()
        except (av.error.FFmpegError, OSError) as exc:
            if container is not None:
                with contextlib.suppress(Exception):
                    container.close()
            log.info("RTMP %s: cannot connect (%s); next try in %.1f s", self.url, exc, self.delay)
            self.next_try = time.monotonic() + self.delay
            self.delay = min(self.backoff_max, self.delay * 2)
            return False
        self.container, self.streams = container, streams  # type: ignore[assignment]
        self.delay = self.backoff
        self.connects += 1
        self.need_keyframe = self.waiting_keyframe = True
        log.info("RTMP %s: connected", self.url)
        return True

    def drop(self, exc: BaseException | None = None) -> None:
        if exc is not None:
            log.warning("RTMP %s: connection lost (%s); reconnecting", self.url, exc)
        container, self.container, self.streams = self.container, None, None
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        self.next_try = time.monotonic() + self.delay
        self.delay = min(self.backoff_max, self.delay * 2)

    def mux(self, packet: Any, kind: int) -> None:
        import av

        if self.container is None or self.streams is None:
            return
        if self.waiting_keyframe:
            if kind != 0 or not packet.is_keyframe:
                return
            self.waiting_keyframe = False
        packet.stream = self.streams[kind]
        try:
            self.container.mux(packet)
        except (av.error.FFmpegError, OSError) as exc:
            self.drop(exc)

    def close(self) -> None:
        container, self.container = self.container, None
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()


class Broadcaster:
    """Plays a :class:`Playlist` to RTMP and/or HLS until ``stop_event`` is set.

    ``rtmp``: an ``rtmp://`` URL. ``hls``: a folder for ``index.m3u8``, its segments and
    ``now.json``. ``max_seconds`` bounds the stream length (tests, demos). ``on_segment`` is
    called with each segment as it goes on air.
    """

    def __init__(self, playlist: Playlist, *, rtmp: str | None = None,
                 hls: str | os.PathLike[str] | None = None,
                 stop_event: threading.Event | None = None,
                 channel: ChannelFormat | None = None, realtime: bool = True,
                 hls_time: float = 2.0, hls_list_size: int = 6,
                 backoff: float = 0.5, backoff_max: float = 8.0,
                 max_seconds: float | None = None,
                 on_segment: Callable[[Segment], None] | None = None) -> None:
        if rtmp is None and hls is None:
            raise ValueError("a broadcaster needs an output: rtmp, hls or both")
        self.playlist = playlist
        self.rtmp_url = rtmp
        self.hls_dir = Path(hls).absolute() if hls is not None else None
        self.stop_event = stop_event or threading.Event()
        self.channel = channel or ChannelFormat()
        self.realtime = realtime
        self.hls_time = hls_time
        self.hls_list_size = hls_list_size
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.max_seconds = max_seconds
        self.on_segment = on_segment
        self.n_video = 0     # channel frames written
        self.n_audio = 0     # channel samples queued for the encoder
        self._apts = 0       # channel samples encoded (whole AAC frames)
        self._abuf = np.zeros((2, 0), np.float32)
        self._pace_base: tuple[float, int] | None = None
        self._recent: list[dict[str, Any]] = []
        self._rtmp: _RtmpOutput | None = None
        self._hls: Any = None
        self._hls_streams: tuple[Any, Any] | None = None
        self._force_key = False
        self._first = 0

    # -- public ----------------------------------------------------------------------------

    def stop(self) -> None:
        self.stop_event.set()

    @property
    def stream_seconds(self) -> float:
        return self.n_video / self.channel.fps

    def run(self) -> BroadcastResult:
        """Broadcast until stopped; see the module's description for what ends it."""
        result = BroadcastResult(reason="stopped")
        # Timestamps continue where the last run on this state folder stopped.
        self.n_video = round(self.playlist.stream_time * self.channel.fps)
        self.n_audio = self._apts = self._channel_samples_at(self.n_video)
        first = self._first = self.n_video
        self._open_encoder()
        try:
            self._open_outputs()
            while not self.stop_event.is_set():
                if self._over_max():
                    result.reason = "max-duration"
                    break
                seg = self.playlist.next()
                if seg is None:
                    # Nothing ever made: hold a black, silent slate rather than stall.
                    self._slate(0.5)
                    continue
                try:
                    self.playlist.stream_time = self.stream_seconds
                    self.playlist.started(seg)
                    self._announce(seg)
                    if self._play(seg):
                        self.playlist.stream_time = self.stream_seconds
                        self.playlist.finished(seg)
                        result.segments += 1
                        result.titles.append(seg.title)
                except _Restart:
                    log.info("segment %r plays again from its start", seg.title)
                    continue
        except _Stop as stop:
            result.reason, result.error = stop.reason, stop.error
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            log.error("disk full while broadcasting: %s; stopping with the state kept", exc)
            result.reason, result.error = "disk-full", str(exc)
        finally:
            result.seconds = (self.n_video - first) / self.channel.fps
            result.reconnects = max(0, (self._rtmp.connects - 1) if self._rtmp else 0)
            self._close()
            self._save_stream_time()
        return result

    def _over_max(self) -> bool:
        return (self.max_seconds is not None
                and self.n_video - self._first >= self.max_seconds * self.channel.fps)

    def _save_stream_time(self) -> None:
        """Remember where the stream got to (best effort: the disk may be full)."""
        self.playlist.stream_time = self.stream_seconds
        try:
            self.playlist.save()
        except OSError as exc:
            log.warning("the playlist state was not updated on the way out: %s", exc)

    # -- encoding --------------------------------------------------------------------------

    def _open_encoder(self) -> None:
        import av

        ch = self.channel
        self._enc = av.open(os.devnull, mode="w", format="null")
        v = self._enc.add_stream("libx264", rate=ch.fps)
        v.width, v.height, v.pix_fmt = ch.width, ch.height, "yuv420p"
        v.codec_context.time_base = Fraction(1, ch.fps)
        v.time_base = Fraction(1, ch.fps)
        v.bit_rate = ch.video_bitrate
        v.codec_context.flags |= GLOBAL_HEADER
        v.options = {
            "preset": ch.preset, "tune": "zerolatency",
            "maxrate": str(ch.video_bitrate), "bufsize": str(ch.video_bitrate * 2),
            # repeat-headers: SPS/PPS before every keyframe, so each HLS segment decodes alone.
            "x264-params": f"keyint={ch.gop}:min-keyint={ch.gop}:scenecut=0:repeat-headers=1:log-level=error",
        }
        a = self._enc.add_stream("aac", rate=ch.sample_rate, layout="stereo")
        a.bit_rate = ch.audio_bitrate
        a.codec_context.flags |= GLOBAL_HEADER
        self._enc.start_encoding()
        self._v, self._a = v, a
        self._resampler = av.AudioResampler(format="fltp", layout="stereo", rate=ch.sample_rate)

    def _open_outputs(self) -> None:
        import av

        if self.hls_dir is not None:
            self.hls_dir.mkdir(parents=True, exist_ok=True)
            try:
                self._hls = av.open(str(self.hls_dir / "index.m3u8"), mode="w", format="hls",
                                    options={"hls_time": f"{self.hls_time:g}",
                                             "hls_list_size": str(self.hls_list_size),
                                             "hls_flags": "delete_segments+append_list+omit_endlist"
                                                          "+temp_file+independent_segments"})
                self._hls_streams = (self._hls.add_stream_from_template(self._v),
                                     self._hls.add_stream_from_template(self._a))
                self._hls.start_encoding()
            except av.error.FFmpegError as exc:
                if is_disk_full(exc):
                    raise _Stop("disk-full", str(exc)) from exc
                raise
        if self.rtmp_url is not None:
            self._rtmp = _RtmpOutput(self.rtmp_url, self._v, self._a, backoff=self.backoff,
                                     backoff_max=self.backoff_max)
            if not self._rtmp.connect() and self._hls is None:
                self._wait_for_rtmp()

    def _wait_for_rtmp(self) -> None:
        """RTMP is the only output and it is down: wait (backing off) until it is back."""
        assert self._rtmp is not None
        while not self._rtmp.up:
            if self.stop_event.wait(max(0.0, self._rtmp.next_try - time.monotonic())):
                raise _Stop("stopped")
            self._rtmp.connect()
        self._pace_base = None  # the outage is not made up for by a burst

    def _service_rtmp(self) -> None:
        r = self._rtmp
        if r is None or r.up:
            return
        if self._hls is None:
            self._wait_for_rtmp()
            self._force_key = True
            raise _Restart()
        if time.monotonic() >= r.next_try and r.connect():
            self._force_key = True

    def _mux(self, packets: list[Any], kind: int) -> None:
        for p in packets:
            if self._hls is not None and self._hls_streams is not None:
                p.stream = self._hls_streams[kind]
                try:
                    self._hls.mux(p)
                except Exception as exc:
                    if is_disk_full(exc):
                        raise _Stop("disk-full", str(exc)) from exc
                    raise
            if self._rtmp is not None:
                self._rtmp.mux(p, kind)

    def _pace(self) -> None:
        if not self.realtime:
            return
        now = time.monotonic()
        if self._pace_base is None:
            self._pace_base = (now, self.n_video)
            return
        t0, n0 = self._pace_base
        due = t0 + (self.n_video - n0) / self.channel.fps
        if due - now > 0:
            self.stop_event.wait(due - now)
        elif now - due > 2.0:
            log.warning("the broadcaster is %.1f s behind real time (machine too slow?)", now - due)
            self._pace_base = (now, self.n_video)

    def _emit_video(self, frame: Any) -> None:
        """Encode one channel frame (a yuv420p VideoFrame of the channel's size)."""
        from av.video.frame import PictureType

        if self._over_max():
            raise _Stop("max-duration")
        self._service_rtmp()
        self._pace()
        frame.pts = self.n_video
        frame.time_base = Fraction(1, self.channel.fps)
        if self._force_key or (self._rtmp is not None and self._rtmp.need_keyframe):
            frame.pict_type = PictureType.I
            self._force_key = False
            if self._rtmp is not None:
                self._rtmp.need_keyframe = False
        else:
            frame.pict_type = PictureType.NONE
        self._mux(self._v.encode(frame), 0)
        self.n_video += 1

    def _emit_audio_until(self, samples: np.ndarray, pos: int, upto: int) -> int:
        """Queue the segment's samples from ``pos`` until the channel's audio reaches ``upto``
        (a channel sample count) and encode every whole AAC frame; returns the new position."""
        import av

        n = min(upto - self.n_audio, samples.shape[1] - pos)
        if n <= 0:
            return pos
        self._abuf = np.concatenate([self._abuf, samples[:, pos:pos + n]], axis=1)
        self.n_audio += n
        ch = self.channel
        while self._abuf.shape[1] >= AUDIO_FRAME:
            chunk = np.ascontiguousarray(self._abuf[:, :AUDIO_FRAME])
            self._abuf = self._abuf[:, AUDIO_FRAME:]
            af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            af.sample_rate = ch.sample_rate
            af.pts = self._apts
            af.time_base = Fraction(1, ch.sample_rate)
            self._apts += AUDIO_FRAME
            self._mux(self._a.encode(af), 1)
        return pos + n

    def _channel_samples_at(self, n_video: int) -> int:
        return n_video * self.channel.sample_rate // self.channel.fps

    # -- playing ---------------------------------------------------------------------------

    def _play(self, seg: Segment) -> bool:
        """Play one segment; True when it played to its end, False when stopped."""
        import av

        path = self.playlist.path_of(seg)
        ch = self.channel
        n_frames = max(1, round(seg.duration * ch.fps))
        first = self.n_video
        end_samples = self._channel_samples_at(first + n_frames)
        audio = self._segment_audio(path, end_samples - self.n_audio)
        apos = 0
        try:
            container = av.open(str(path))
        except av.error.FFmpegError as exc:
            log.error("segment %s cannot be read (%s); dropped from the playlist", path, exc)
            self.playlist.drop(seg)
            return False
        try:
            frames = container.decode(video=0) if container.streams.video else iter(())
            current: Any = None
            pending: Any = None
            done = False
            for k in range(n_frames):
                if self.stop_event.is_set():
                    return False
                t = k / ch.fps + 0.5 / ch.fps
                # Take the latest source picture shown at channel time t.
                while not done:
                    if pending is None:
                        try:
                            pending = next(frames)
                        except StopIteration:
                            done = True
                            break
                        except av.error.FFmpegError as exc:
                            log.warning("segment %s: decoding stopped early (%s)", path, exc)
                            done = True
                            break
                    ptime = pending.time if pending.time is not None else 0.0
                    if current is not None and ptime > t:
                        break
                    current, pending = pending, None
                self._emit_video(self._fit(current))
                apos = self._emit_audio_until(audio, apos, self._channel_samples_at(self.n_video))
            self._emit_audio_until(audio, apos, end_samples)
            return True
        finally:
            container.close()

    def _fit(self, frame: Any) -> Any:
        """A source frame (or None) as a channel frame: scaled, letterboxed, yuv420p."""
        import av

        ch = self.channel
        if frame is None:
            return av.VideoFrame.from_ndarray(np.zeros((ch.height, ch.width, 3), np.uint8),
                                              format="rgb24").reformat(format="yuv420p")
        if frame.width * ch.height == frame.height * ch.width:
            return frame.reformat(width=ch.width, height=ch.height, format="yuv420p")
        scale = min(ch.width / frame.width, ch.height / frame.height)
        w = max(2, int(frame.width * scale) // 2 * 2)
        h = max(2, int(frame.height * scale) // 2 * 2)
        img = frame.reformat(width=w, height=h, format="rgb24").to_ndarray()
        canvas = np.zeros((ch.height, ch.width, 3), np.uint8)
        y, x = (ch.height - h) // 2, (ch.width - w) // 2
        canvas[y:y + h, x:x + w] = img
        return av.VideoFrame.from_ndarray(canvas, format="rgb24").reformat(format="yuv420p")

    def _segment_audio(self, path: Path, n: int) -> np.ndarray:
        """The segment's sound as channel samples (2 x n, float), silence where it has none."""
        import av

        out = np.zeros((2, max(0, n)), np.float32)
        if n <= 0:
            return out
        chunks = []
        try:
            with av.open(str(path)) as container:
                if container.streams.audio:
                    resampler = av.AudioResampler(format="fltp", layout="stereo",
                                                  rate=self.channel.sample_rate)
                    for frame in container.decode(audio=0):
                        frame.pts = None
                        for r in resampler.resample(frame):
                            chunks.append(r.to_ndarray())
                    for r in resampler.resample(None):
                        chunks.append(r.to_ndarray())
        except av.error.FFmpegError as exc:
            log.warning("segment %s: its sound cannot be read (%s); silence instead", path, exc)
        if chunks:
            data = np.concatenate(chunks, axis=1)[:, :n]
            out[:, :data.shape[1]] = data
        return out

    def _slate(self, seconds: float) -> None:
        n = max(1, round(seconds * self.channel.fps))
        silence = np.zeros((2, self._channel_samples_at(self.n_video + n) - self.n_audio), np.float32)
        pos = 0
        for _ in range(n):
            if self.stop_event.is_set():
                return
            try:
                self._emit_video(self._fit(None))
            except _Restart:
                return
            pos = self._emit_audio_until(silence, pos, self._channel_samples_at(self.n_video))

    # -- metadata --------------------------------------------------------------------------

    def _announce(self, seg: Segment) -> None:
        entry = {"id": seg.id, "title": seg.title, "duration": seg.duration,
                 "stream_time": round(self.stream_seconds, 3), "wall_time": time.time()}
        self._recent = (self._recent + [entry])[-10:]
        status = self.playlist.status()
        data = {"now": entry, "recent": self._recent,
                "next": [q["title"] for q in status.queue[:5]],
                "ahead_s": status.ahead_s, "behind_s": status.behind_s}
        folder = self.hls_dir or self.playlist.state_dir
        atomic_write_bytes(folder / NOW_FILE, json.dumps(data, indent=1).encode())
        if self.on_segment is not None:
            self.on_segment(seg)

    def _close(self) -> None:
        try:
            for kind, enc in ((0, self._v), (1, self._a)):
                with contextlib.suppress(Exception):
                    self._mux(enc.encode(None), kind)
        finally:
            if self._rtmp is not None:
                self._rtmp.close()
            if self._hls is not None:
                try:
                    self._hls.close()
                except Exception as exc:
                    log.warning("HLS output did not close cleanly: %s", exc)
                self._hls = None
            with contextlib.suppress(Exception):
                self._enc.close()
