"""Write video atomically: H.264/H.265, ProRes 4444 and VP9 with alpha, PNG/EXR sequences."""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kinema.core import atomic
from kinema.core.errors import InvalidArgumentError, MediaWriteError, write_error
from kinema.core.frames import check_frame
from kinema.core.timebase import to_fraction
from kinema.media.audio import AudioMux, SamplesMux
from kinema.media.codecs import CodecSpec, codec_for, x264_params

if TYPE_CHECKING:
    import av

SEQUENCE_NAME = "frame_{:06d}"


class VideoWriter:
    """Encode RGB/RGBA frames to ``path``; the file appears under its name only on :meth:`close`.

    ``codec`` defaults from the extension (``.mp4`` H.264, ``.mov`` ProRes 4444 with alpha,
    ``.webm`` VP9, a folder a PNG sequence). ``audio_from`` copies (or re-encodes, when the
    container cannot hold it) the first audio stream of another file, trimmed to the video's
    length; ``audio_start`` is the time on that file's timeline that lines up with frame 0.
    ``audio_samples`` (float ``(channels, n)`` at ``audio_rate``) is encoded instead, e.g. a mix.
    Frame ``k`` is stamped ``k / fps`` unless :meth:`write` is given its time; ``time_base``
    (default ``1 / fps``) is the unit of the stamps, finer for variable frame rate.
    Used as a context manager, an exception discards the partial output.
    """

    def __init__(self, path: str | os.PathLike[str], fps: Fraction | int | float | str,
                 size: tuple[int, int], codec: str | None = None, alpha: bool = False,
                 audio_from: str | os.PathLike[str] | None = None,
                 audio_start: Fraction | float = 0, audio_samples: np.ndarray | None = None,
                 audio_rate: int = 48000, overwrite: bool = False,
                 options: dict[str, str] | None = None, metadata: dict[str, str] | None = None,
                 time_base: Fraction | None = None) -> None:
        self.path = Path(path)
        self.fps = to_fraction(fps)
        if self.fps <= 0:
            raise InvalidArgumentError(f"frame rate must be positive, got {fps}", path=self.path)
        self.size = (int(size[0]), int(size[1]))
        if self.size[0] < 1 or self.size[1] < 1:
            raise InvalidArgumentError(f"frame size must be positive, got {size}", path=self.path)
        self.alpha = alpha
        self.spec: CodecSpec = codec_for(self.path, codec, alpha)
        if self.spec.even_size and (self.size[0] % 2 or self.size[1] % 2):
            raise InvalidArgumentError(
                f"{self.spec.name} needs even width and height, got {self.size[0]}x{self.size[1]}",
                path=self.path, hint="crop or pad by one pixel, or use prores4444/vp9/png")
        if audio_from is not None and audio_samples is not None:
            raise InvalidArgumentError("give audio_from or audio_samples, not both", path=self.path)
        if (audio_from is not None or audio_samples is not None) and self.spec.image_sequence:
            raise InvalidArgumentError("image sequences carry no audio", path=self.path,
                                       hint="write a movie file to keep the sound")
        self.overwrite = overwrite
        atomic.check_can_write(self.path, overwrite, folder=self.spec.image_sequence)
        if not self.path.parent.is_dir():
            raise MediaWriteError("output folder does not exist", path=self.path.parent,
                                  hint="create it first")
        self.frames_written = 0
        self.time_base = Fraction(time_base) if time_base is not None else 1 / self.fps
        self._last_pts = -1
        self._end = Fraction(0)  # where the video written so far ends, in seconds
        self._closed = False
        self._temp = atomic.temp_path_for(self.path)
        self._container: av.container.OutputContainer | None = None
        self._audio: AudioMux | SamplesMux | None = None
        with atomic.naming_errors(self.path):
            if self.spec.image_sequence:
                self._temp.mkdir()
            else:
                self._open_container(options or {}, metadata or {}, audio_from, audio_start,
                                     audio_samples, audio_rate)

    def _open_container(self, options: dict[str, str], metadata: dict[str, str],
                        audio_from: str | os.PathLike[str] | None,
                        audio_start: Fraction | float, audio_samples: np.ndarray | None,
                        audio_rate: int) -> None:
        import av

        fmt = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}[
            self.path.suffix.lower()]
        opts = {**self.spec.options, **options}
        if self.spec.encoder == "libx264":  # the same frames give the same bytes (x264_params)
            params = x264_params(opts.get("x264-params"))
            if params:
                opts["x264-params"] = params
        movflags = opts.pop("movflags", None)
        container_opts = {"movflags": movflags} if movflags and fmt in ("mp4", "mov") else {}
        try:
            self._container = av.open(str(self._temp), mode="w", format=fmt,
                                      options=container_opts)
            for key, value in metadata.items():
                self._container.metadata[key] = value
            stream = self._container.add_stream(self.spec.encoder, rate=self.fps)
            stream.width, stream.height = self.size
            stream.pix_fmt = self.spec.alpha_pix_fmt if self.alpha else self.spec.pix_fmt
            stream.time_base = self.time_base
            stream.codec_context.time_base = self.time_base
            stream.options = opts
            # Tagged BT.709, limited range: the matrix write() converts with.
            ctx = stream.codec_context
            ctx.colorspace = ctx.color_range = ctx.color_primaries = ctx.color_trc = 1
            if self.spec.name == "h265" and fmt in ("mp4", "mov"):
                stream.codec_tag = "hvc1"  # QuickTime and browsers want hvc1, not hev1
            if self.spec.name == "vp9" and self.alpha:
                stream.metadata["alpha_mode"] = "1"
            self._stream = stream
            if audio_from is not None:
                self._audio = AudioMux(self._container, Path(audio_from), Fraction(audio_start),
                                       self.spec.audio_encoder)
            elif audio_samples is not None:
                self._audio = SamplesMux(self._container, audio_samples, audio_rate,
                                         self.spec.audio_encoder)
        except Exception:
            self._abort_quietly()
            raise

    def write(self, frame: np.ndarray, time: Fraction | None = None) -> None:
        """Append one ``uint8`` RGB (or RGBA when ``alpha``) frame of the writer's size.

        ``time`` (seconds from the first frame, increasing) keeps a variable-rate source's
        timing; it is rounded to ``time_base`` and ignored by image sequences.
        """
        if self._closed:
            raise InvalidArgumentError("writer is closed", path=self.path)
        if self.spec.name == "exr" and frame.dtype == np.float32:
            if frame.ndim != 3 or (frame.shape[1], frame.shape[0]) != self.size:
                raise InvalidArgumentError(
                    f"frame is {frame.shape}, expected ({self.size[1]}, {self.size[0]}, 3|4)",
                    path=self.path)
            frame_arr = frame
        else:
            frame_arr = check_frame(frame, self.size)
            if self.alpha and frame_arr.shape[2] == 3:
                frame_arr = np.concatenate(
                    [frame_arr, np.full(frame_arr.shape[:2] + (1,), 255, np.uint8)], axis=2)
            elif not self.alpha and frame_arr.shape[2] == 4:
                frame_arr = frame_arr[..., :3]
        with atomic.naming_errors(self.path):
            try:
                if self.spec.image_sequence:
                    self._write_image(frame_arr)
                else:
                    self._encode(frame_arr, time)
            except Exception:
                self._abort_quietly()
                raise
        self.frames_written += 1

    def _write_image(self, frame: np.ndarray) -> None:
        from kinema.media.image import encode_exr, encode_png

        data = encode_png(frame) if self.spec.name == "png" else encode_exr(frame)
        name = SEQUENCE_NAME.format(self.frames_written) + f".{self.spec.name}"
        (self._temp / name).write_bytes(data)

    def _encode(self, frame: np.ndarray, time: Fraction | None) -> None:
        import av

        start = Fraction(self.frames_written) / self.fps if time is None else Fraction(time)
        pts = round(start / self.time_base)
        if pts <= self._last_pts:
            raise InvalidArgumentError(f"frame time {float(start):.6f}s does not come after the last one",
                                       path=self.path)

        fmt = "rgba" if frame.shape[2] == 4 else "rgb24"
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=fmt)
        vf = vf.reformat(format=self._stream.pix_fmt, dst_colorspace=1, dst_color_range=1)
        vf.pts = pts
        vf.time_base = self._stream.codec_context.time_base
        assert self._container is not None
        self._container.mux(self._stream.encode(vf))
        self._last_pts = pts
        self._end = start + 1 / self.fps  # the last frame lasts one nominal frame
        if self._audio is not None:
            self._audio.mux_until(self._end)

    def close(self) -> Path:
        """Finish the file and move it to its final name; returns that path."""
        if self._closed:
            return self.path
        try:
            if self._container is not None:
                self._container.mux(self._stream.encode(None))
                if self._audio is not None:
                    self._audio.finish(self._end)
                self._container.close()
                self._container = None
            if self.frames_written == 0:
                raise MediaWriteError("no frames were written", path=self.path)
            finish = atomic.commit_frames if self.spec.image_sequence else atomic.commit
            finish(self._temp, self.path, self.overwrite)
        except Exception as exc:
            self._abort_quietly()
            if isinstance(exc, (MediaWriteError, InvalidArgumentError, FileExistsError)):
                raise
            if isinstance(exc, OSError):
                raise write_error(exc, self.path) from exc
            raise MediaWriteError(f"could not finish writing: {exc}", path=self.path,
                                  hint="check free disk space and permissions") from exc
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Stop and delete the partial output; nothing appears under the final name."""
        self._abort_quietly()

    def _abort_quietly(self) -> None:
        self._closed = True
        if self._audio is not None:
            self._audio.close()
            self._audio = None
        if self._container is not None:
            with contextlib.suppress(Exception):  # already failing; the temp file goes below
                self._container.close()
            self._container = None
        atomic.discard(self._temp)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
