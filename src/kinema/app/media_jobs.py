"""Media use cases: extract a frame, build a proxy, transcode. Long ones yield progress."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

from kinema.core.errors import InvalidArgumentError
from kinema.core.frames import check_index, frame_range
from kinema.core.jobs import Progress, Steps
from kinema.core.timebase import parse_time


def extract_frame(video: str | os.PathLike[str], out: str | os.PathLike[str], *,
                  index: int | None = None, time: str | Fraction | None = None,
                  overwrite: bool = False) -> int:
    """Write frame ``index`` (or the frame on screen at ``time``) of ``video`` as PNG/EXR.

    Returns the frame index written.
    """
    from kinema.core.atomic import check_can_write, check_not_input
    from kinema.media import open_video
    from kinema.media.image import write_image

    if (index is None) == (time is None):
        raise InvalidArgumentError("give exactly one of --index or --time")
    target = Path(out)
    check_can_write(target, overwrite)
    check_not_input(target, [video])
    with open_video(video, prefetch=False) as reader:
        try:
            if index is None:
                t = parse_time(time) if isinstance(time, str) else Fraction(time)  # type: ignore[arg-type]
                index = reader.index_at(t)
            frame = reader[check_index(index, len(reader), path=video)]
        except IndexError as exc:
            raise InvalidArgumentError(str(exc), path=video,
                                       hint="use kinema probe to see its length") from exc
    write_image(target, frame)
    return index


def make_proxy(video: str | os.PathLike[str], *, beside: bool = False,
               force: bool = False) -> Steps[None]:
    """Build the proxy of ``video`` unless a fresh one exists (``force`` rebuilds); with
    ``beside`` only a fresh one beside it counts, one in the user cache does not."""
    from kinema.media.proxy import build_proxy, find_proxy, proxy_path

    found = find_proxy(video)
    if not force and found is not None and (not beside or found == proxy_path(video, beside=True)):
        return
    yield from build_proxy(video, beside=beside)


def transcode(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
              codec: str | None = None, start: int = 0, stop: int | None = None,
              keep_audio: bool = True, alpha: bool = False,
              overwrite: bool = False) -> Steps[None]:
    """Re-encode frames ``[start, stop)`` of ``src`` into ``dst`` (codec from its extension).

    Audio from the same range is carried over unless ``keep_audio`` is false or the output
    is an image sequence. A variable-frame-rate source keeps every frame at its own time.
    """
    from kinema.core.atomic import check_not_input
    from kinema.media import open_video
    from kinema.media.codecs import codec_for
    from kinema.media.container import has_audio
    from kinema.media.writer import VideoWriter

    target = Path(dst)
    check_not_input(target, [src])
    with open_video(src, prefetch=False, alpha=alpha) as reader:
        begin, end = frame_range(len(reader), start, stop, path=src)
        spec = codec_for(target, codec, alpha and reader.has_alpha)
        audio = src if keep_audio and not spec.image_sequence and has_audio(src) else None
        # Stamped k / fps, a variable-rate source's frames would drift away from its sound.
        vfr = reader.is_vfr
        first = reader.timestamp(begin)
        with VideoWriter(target, reader.fps, reader.size, codec=spec.name,
                         alpha=alpha and reader.has_alpha, audio_from=audio,
                         audio_start=reader.start_time + first, overwrite=overwrite,
                         time_base=reader.time_base if vfr else None) as writer:
            for k, frame in enumerate(reader.frames(begin, end)):
                writer.write(frame, reader.timestamp(begin + k) - first if vfr else None)
                yield Progress(k + 1, end - begin)
