"""Render a project in resumable chunks: composite, encode each run of frames, join, mix audio.

Each chunk of frames is encoded as its own file in a work folder beside the output
(``.OUT.kinema-render/``), written atomically, so after a crash or Ctrl-C every chunk on disk is
whole. ``resume`` keeps them when the project, sources, masks and settings are unchanged (a
manifest holds their fingerprint) and renders only the rest; the parts are then joined by
copying packets, so a resumed render is the same file as one that never stopped.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from kinema.app.audio_mix import MIX_RATE, mix_audio
from kinema.app.evaluate import FrameEvaluator, media_paths
from kinema.app.provenance import summary, write_provenance
from kinema.app.style_layer import update_styles
from kinema.core import atomic
from kinema.core.errors import InvalidArgumentError, MediaWriteError
from kinema.core.frames import frame_range
from kinema.core.jobs import Progress, Steps
from kinema.document import store
from kinema.document.model import Project

CHUNK_SECONDS = 2
MANIFEST = "render.json"


def work_folder(target: Path) -> Path:
    """Where the chunks of a render of ``target`` wait until they are joined."""
    return target.with_name(f".{target.name}.kinema-render")


def render(project_path: str | os.PathLike[str], out: str | os.PathLike[str], *,
           start: int = 0, stop: int | None = None, codec: str | None = None,
           overwrite: bool = False, resume: bool = False,
           chunk_frames: int | None = None) -> Steps[None]:
    """Render timeline frames ``[start, stop)`` to ``out`` and write its provenance, yielding
    progress in frames, a checkpoint after each finished chunk. With ``resume``, chunks left by
    an interrupted render of the same project and settings are kept."""
    from kinema.media.codecs import codec_for
    from kinema.media.concat import join_movies, join_sequences, part_suffix
    from kinema.media.writer import VideoWriter

    folder = store.project_path(project_path)
    project = store.load(folder)
    tl = project.timeline
    begin, end = timeline_range(tl.duration, start, stop, folder)
    target = Path(out)
    spec = codec_for(target, codec, alpha=False)
    atomic.check_can_write(target, overwrite, folder=spec.image_sequence)
    atomic.check_not_input(target, [folder, folder / store.DOCUMENT,
                                    *media_paths(project, folder)[0].values()])
    alpha = spec.alpha_pix_fmt is not None  # transparent where no layer covers the frame
    chunk = chunk_frames or max(1, round(tl.rate * CHUNK_SECONDS))
    evaluator = FrameEvaluator(project, folder)  # refuses missing media before any work
    yield from update_styles(project, folder)  # style layers' frames where keys changed
    work = work_folder(target)
    suffix = part_suffix(target, spec.name)
    parts = [(work / f"part_{k:05d}{suffix}", a, min(a + chunk, end))
             for k, a in enumerate(range(begin, end, chunk))]
    paths = [path for path, _, _ in parts]
    total = end - begin
    try:
        with atomic.naming_errors(target):
            _prepare(work, _fingerprint(project, folder, begin, end, spec.name, chunk), resume)
            done = sum(b - a for path, a, b in parts if path.exists())
            if done:
                yield Progress(done, total, checkpoint=True)
            for path, a, b in parts:
                if path.exists():
                    continue
                with VideoWriter(path, tl.rate, (tl.width, tl.height), codec=spec.name,
                                 alpha=alpha) as writer:
                    for t, frame in enumerate(_ahead(evaluator, range(a, b), alpha), a + 1):
                        writer.write(frame)
                        done += 1
                        if t < b:  # the chunk's last frame is reported once it is on disk
                            yield Progress(done, total)
                yield Progress(done, total, checkpoint=True)
    except MediaWriteError as exc:  # name the output, not the chunk it happened in
        raise MediaWriteError(exc.reason, path=target,
                              hint=f"{exc.hint}, then run the same command with --resume") from exc
    finally:
        evaluator.close()
        if not any(path.exists() for path in paths):  # nothing to resume from
            shutil.rmtree(work, ignore_errors=True)
    if spec.image_sequence:
        join_sequences(paths, target, overwrite=overwrite)
    else:
        join_movies(paths, target, tl.rate, audio_samples=mix_audio(project, folder, begin, end),
                    audio_rate=MIX_RATE, audio_encoder=spec.audio_encoder,
                    metadata={"comment": summary(project)}, overwrite=overwrite)
    shutil.rmtree(work, ignore_errors=True)
    write_provenance(target, project, folder, begin, end)


def timeline_range(duration: int, start: int, stop: int | None, folder: Path) -> tuple[int, int]:
    """Frames ``[start, stop)`` of a timeline of ``duration`` frames (an error outside it)."""
    if duration < 1:
        raise InvalidArgumentError("the timeline is empty: nothing to render", path=folder,
                                   hint="put a clip on it first")
    return frame_range(duration, start, stop, path=folder)


def _ahead(evaluator: FrameEvaluator, frames: range, alpha: bool,
           depth: int = 2) -> Iterator[np.ndarray]:
    """Frames composited on a worker thread, ``depth`` ahead of the encoder that takes them:
    numpy, OpenCV and FFmpeg release the GIL, so compositing overlaps encoding."""
    with ThreadPoolExecutor(1, thread_name_prefix="kinema-composite") as pool:
        pending: deque[Future[np.ndarray]] = deque()
        todo = iter(frames)
        try:
            for t in itertools.islice(todo, depth):
                pending.append(pool.submit(evaluator.frame, t, alpha=alpha))
            while pending:
                frame = pending.popleft().result()
                for t in itertools.islice(todo, 1):
                    pending.append(pool.submit(evaluator.frame, t, alpha=alpha))
                yield frame
        finally:
            for future in pending:
                future.cancel()


def _fingerprint(project: Project, folder: Path, begin: int, end: int, codec: str,
                 chunk: int) -> str:
    """Changes when anything that decides the rendered pixels does."""
    from kinema import __version__

    paths, _ = media_paths(project, folder)
    sources = {m: [os.stat(p).st_size, os.stat(p).st_mtime_ns] for m, p in sorted(paths.items())}
    masks = folder / "masks"
    mask_files = sorted(
        [str(p.relative_to(masks)), p.stat().st_size, p.stat().st_mtime_ns]
        for p in masks.rglob("*") if p.is_file()) if masks.is_dir() else []
    state = {"project": json.loads(project.model_dump_json()), "range": [begin, end],
             "codec": codec, "chunk": chunk, "sources": sources, "masks": mask_files,
             "kinema": __version__}
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def _prepare(work: Path, fingerprint: str, resume: bool) -> None:
    """Keep ``work`` for a resume of the same render, else start it afresh."""
    manifest = work / MANIFEST
    if resume and manifest.is_file():
        if json.loads(manifest.read_text()).get("fingerprint") == fingerprint:
            return
        raise InvalidArgumentError(
            "the project, its media or the render settings changed since this render began",
            path=work.parent, hint="render again without --resume to start over")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    atomic.atomic_write_bytes(manifest, json.dumps({"fingerprint": fingerprint}).encode())
