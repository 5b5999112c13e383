"""Audio: carry a source's sound into a written file, and waveform peaks for the timeline."""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kinema.core.errors import InvalidArgumentError, UnsupportedMediaError
from kinema.media.container import open_input

if TYPE_CHECKING:
    import av


def _audio_stream(container: av.container.InputContainer, path: Path) -> av.audio.stream.AudioStream:
    if not container.streams.audio:
        raise UnsupportedMediaError("has no audio stream", path=path,
                                    hint="pick a file with sound, or leave audio out")
    return container.streams.audio[0]


class _PacketFeed:
    """Muxes ``(time, packet)`` pairs into an output container as the video catches up."""

    def __init__(self, output: av.container.OutputContainer,
                 items: Iterator[tuple[Fraction, object]]) -> None:
        self._output = output
        self._items = items
        self._pending: tuple[Fraction, object] | None = None

    def mux_until(self, t: Fraction) -> None:
        """Mux every audio packet that starts before ``t`` (the muxer interleaves)."""
        while True:
            if self._pending is None:
                self._pending = next(self._items, None)
                if self._pending is None:
                    return
            when, packet = self._pending
            if when >= t:
                return
            self._output.mux(packet)
            self._pending = None

    def finish(self, end: Fraction) -> None:
        """Mux the rest of the sound up to ``end`` (the video's length)."""
        self.mux_until(end)
        self.close()

    def close(self) -> None:
        """Release what the feed reads from."""


def _encode_frames(stream: av.audio.stream.AudioStream,
                   frames: Iterator[av.AudioFrame]) -> Iterator[tuple[Fraction, object]]:
    """Encode ``frames`` (already in the stream's format) in encoder-sized blocks, timed from 0."""
    import av

    ctx = stream.codec_context
    fifo = av.AudioFifo()
    written = 0
    frame_size = ctx.frame_size or 1024

    def timed(packets: list[av.Packet]) -> Iterator[tuple[Fraction, object]]:
        for packet in packets:  # an encoder's packets carry the time of the samples they hold
            yield packet.pts * packet.time_base, packet

    def drain(final: bool) -> Iterator[tuple[Fraction, object]]:
        nonlocal written
        while fifo.samples >= frame_size or (final and fifo.samples):
            frame = fifo.read(min(frame_size, fifo.samples) if final else frame_size)
            frame.pts, frame.time_base = written, Fraction(1, ctx.rate)
            written += frame.samples
            yield from timed(stream.encode(frame))

    for frame in frames:
        fifo.write(frame)
        yield from drain(False)
    yield from drain(True)
    yield from timed(stream.encode(None))


class AudioMux(_PacketFeed):
    """Feeds the first audio stream of ``source`` into an output container alongside video.

    ``start`` is the time on the source's timeline (seconds, as its timestamps count them)
    that lines up with the output's first frame, so sound stays in sync with the picture.
    Packets are copied when the container can hold the codec and the output starts no later
    than the sound does; otherwise the sound is decoded, trimmed sample-exactly from ``start``
    and re-encoded with ``encoder``.
    """

    def __init__(self, output: av.container.OutputContainer, source: Path, start: Fraction,
                 encoder: str) -> None:
        self.source = source
        self.start = start
        self._input = open_input(source)
        self._in = _audio_stream(self._input, source)
        codec = self._in.codec_context.name
        tb = self._in.time_base
        begins = self._in.start_time * tb if self._in.start_time is not None and tb else 0
        copy = start <= begins and codec in output.supported_codecs and codec != "pcm_s16le"
        if copy:
            self._out = output.add_stream_from_template(self._in)
            items: Iterator = self._packets()
        else:
            rate = 48000 if encoder == "libopus" else self._in.codec_context.sample_rate
            layout = "stereo" if self._in.codec_context.channels >= 2 else "mono"
            self._out = output.add_stream(encoder, rate=rate, layout=layout)
            items = _encode_frames(self._out, self._trimmed())
        super().__init__(output, items)

    def _packets(self) -> Iterator[tuple[Fraction, object]]:
        tb = self._in.time_base
        shift = int(round(self.start / tb))
        for packet in self._input.demux(self._in):
            if packet.size == 0 or packet.pts is None:
                continue
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            t = packet.pts * tb
            packet.stream = self._out
            yield t, packet

    def _trimmed(self) -> Iterator[av.AudioFrame]:
        """The source's sound in the output's format, from ``start`` on, sample-exact."""
        import av

        ctx = self._out.codec_context
        resampler = av.AudioResampler(format=ctx.format.name, layout=ctx.layout.name, rate=ctx.rate)
        skip = int(round(self.start * ctx.rate))
        if self.start > 0:
            self._input.seek(int(self.start / self._in.time_base), stream=self._in)
        origin = None
        for frame in self._input.decode(self._in):
            for out in resampler.resample(frame):
                if origin is None:
                    # Samples before the start (seeks land early) are dropped exactly; sound
                    # that begins after it is preceded by silence, so it stays in sync.
                    origin = int(round((frame.time or 0) * ctx.rate))
                    skip -= origin
                    if skip < 0:
                        yield _silence_like(out, -skip)
                        skip = 0
                if skip > 0:
                    if out.samples <= skip:
                        skip -= out.samples
                        continue
                    out, skip = _tail(out, out.samples - skip), 0
                yield out
        yield from resampler.resample(None)

    def close(self) -> None:
        self._input.close()


class SamplesMux(_PacketFeed):
    """Encodes float samples ``(channels, n)`` in [-1, 1] at ``rate`` into an output container."""

    def __init__(self, output: av.container.OutputContainer, samples: np.ndarray, rate: int,
                 encoder: str) -> None:
        import av

        layout = "stereo" if samples.shape[0] == 2 else "mono"
        out_rate = 48000 if encoder == "libopus" else rate
        self._out = output.add_stream(encoder, rate=out_rate, layout=layout)
        ctx = self._out.codec_context
        resampler = av.AudioResampler(format=ctx.format.name, layout=layout, rate=out_rate)
        block = 4096

        def frames() -> Iterator[av.AudioFrame]:
            for a in range(0, samples.shape[1], block):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[:, a:a + block], np.float32), format="fltp",
                    layout=layout)
                frame.sample_rate = rate
                frame.pts, frame.time_base = a, Fraction(1, rate)
                yield from resampler.resample(frame)
            yield from resampler.resample(None)

        super().__init__(output, _encode_frames(self._out, frames()))


def read_audio(path: str | os.PathLike[str], start: Fraction, duration: Fraction, *,
               rate: int = 48000, channels: int = 2) -> np.ndarray:
    """``duration`` seconds of ``path``'s first audio stream from ``start`` (on its timestamps),
    as float32 ``(channels, n)``, sample-exact; silence where the file has no sound."""
    import av

    p = Path(path)
    count = int(round(duration * rate))
    out = np.zeros((channels, count), np.float32)
    container = open_input(p)
    try:
        stream = _audio_stream(container, p)
        # Mono goes to every channel at full level (as editors place it); FFmpeg's own upmix
        # would lower it by 3 dB. More channels than asked for are downmixed by FFmpeg.
        mono = stream.codec_context.channels == 1
        layout = "mono" if mono or channels == 1 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        first = int(round(start * rate))
        if start > 0:
            container.seek(int(start / stream.time_base), stream=stream)
        at: int | None = None  # sample index, on the file's timeline, of the next resampled sample
        for frame in container.decode(stream):
            if at is None:
                at = int(round((frame.time or 0) * rate))
            for chunk in resampler.resample(frame):
                data = chunk.to_ndarray()
                a, b = max(at, first), min(at + data.shape[1], first + count)
                if a < b:
                    out[:, a - first:b - first] = data[:, a - at:b - at]  # broadcasts mono
                at += data.shape[1]
            if at >= first + count:
                break
    finally:
        container.close()
    return out


def _tail(frame: av.AudioFrame, count: int) -> av.AudioFrame:
    """The last ``count`` samples of ``frame``."""
    data = frame.to_ndarray()
    per_sample = data.shape[1] // frame.samples  # packed formats interleave the channels
    return _frame_like(frame, np.ascontiguousarray(data[:, data.shape[1] - count * per_sample:]))


def _silence_like(frame: av.AudioFrame, count: int) -> av.AudioFrame:
    """``count`` samples of silence in ``frame``'s format."""
    data = frame.to_ndarray()
    per_sample = data.shape[1] // frame.samples
    return _frame_like(frame, np.zeros((data.shape[0], count * per_sample), data.dtype))


def _frame_like(frame: av.AudioFrame, data: np.ndarray) -> av.AudioFrame:
    import av

    out = av.AudioFrame.from_ndarray(data, format=frame.format.name, layout=frame.layout.name)
    out.sample_rate = frame.sample_rate
    return out


def audio_peaks(path: str | os.PathLike[str], n: int) -> np.ndarray:
    """Waveform of the first audio stream: ``(n, 2)`` float32 ``[min, max]`` per bucket, mono mix.

    Values are in [-1, 1]. Each bucket covers an equal share of the audio's duration.
    """
    import av

    if n < 1:
        raise InvalidArgumentError(f"peak count must be >= 1, got {n}")
    p = Path(path)
    container = open_input(p)
    try:
        stream = _audio_stream(container, p)
        stream.thread_type = "AUTO"
        resampler = av.AudioResampler(format="flt", layout="mono", rate=stream.codec_context.sample_rate)
        block = 256
        mins: list[np.ndarray] = []
        maxs: list[np.ndarray] = []
        carry = np.empty(0, np.float32)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                samples = np.concatenate([carry, out.to_ndarray().reshape(-1)])
                whole = len(samples) // block * block
                blocks = samples[:whole].reshape(-1, block)
                if len(blocks):
                    mins.append(blocks.min(axis=1))
                    maxs.append(blocks.max(axis=1))
                carry = samples[whole:]
        if len(carry):
            mins.append(carry.min(keepdims=True))
            maxs.append(carry.max(keepdims=True))
    finally:
        container.close()
    if not mins:
        return np.zeros((n, 2), np.float32)
    lo, hi = np.concatenate(mins), np.concatenate(maxs)
    edges = np.linspace(0, len(lo), n + 1).astype(int)
    out = np.zeros((n, 2), np.float32)
    for k in range(n):
        a, b = edges[k], max(edges[k + 1], edges[k] + 1)
        if a < len(lo):
            out[k] = (lo[a:b].min(), hi[a:b].max())
    return np.clip(out, -1.0, 1.0)
