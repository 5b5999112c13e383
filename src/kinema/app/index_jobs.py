"""Semantic search over footage: index videos' shots with CLIP, then find them by words or a picture.

Indexing samples a few frames of every shot (decoded small, in a background thread while the
model embeds the previous batch), embeds them and stores one row per frame in the LanceDB index
with a small PNG thumbnail. A video's rows are written in one commit once all of them are
embedded, so a run that is stopped leaves only whole videos behind, and a file whose stamp (size,
mtime, hash of its first and last MiB) is already in the index is skipped: re-running an
interrupted or repeated job only does the work that is left. A changed file is re-indexed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from kinema.core.errors import (
    CorruptMediaError,
    InvalidArgumentError,
    KinemaError,
    MediaError,
)
from kinema.core.jobs import Progress, Steps
from kinema.media.proxy import PROXY_SUFFIX
from kinema.models import backends
from kinema.search.embed import Embedder, as_rgb, normalize_rows
from kinema.search.index import Hit, Index

if TYPE_CHECKING:
    from kinema.media.reader import VideoReader

log = logging.getLogger("kinema.search")

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
CHUNK_SECONDS = 2.0
DECODE_SHORT_SIDE = 224  # CLIP's input size: decoding any larger is wasted work
THUMB_WIDTH = 160
PROMPT = "a photo of {}"

ShotFinder = Callable[[Path], Sequence[tuple[int, int]]]
ModelArg = str | os.PathLike[str] | Embedder | None
T = TypeVar("T")


@dataclass(frozen=True)
class Sample:
    """A decoded frame of a shot: ``shot`` is ``(start, end)`` frames (end exclusive)."""

    shot: tuple[int, int]
    frame: int
    image: np.ndarray


def find_videos(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The video files among ``paths`` and (recursively) in the folders among them, absolute,
    each once, in order (folders sorted). Hidden files and folders (kinema's own proxies in
    ``.kinema-proxies/``, render work folders) and proxies are left out of folders."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS
                            and p.is_file() and not _hidden_or_proxy(p.relative_to(path)))
        elif path.is_file():
            found.append(path)
        else:
            raise InvalidArgumentError("no such file or folder", path=path)
    return list(dict.fromkeys(p.resolve() for p in found))


def _hidden_or_proxy(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts) or relative.name.endswith(PROXY_SUFFIX)


def video_key(path: Path) -> str:
    """The stamp stored with a video's rows: size, mtime and a hash of its first and last MiB."""
    from kinema.media.stamp import source_stamp

    stamp = source_stamp(path)
    return f"{stamp['size']}:{stamp['mtime_ns']}:{str(stamp['sha256_head_tail'])[:32]}"


def chunk_shots(frames: int, fps: float, seconds: float = CHUNK_SECONDS) -> list[tuple[int, int]]:
    """``[start, end)`` chunks of about ``seconds`` covering ``frames`` frames: the shots when no
    shot detector is given."""
    size = max(1, round(seconds * fps)) if fps > 0 else max(1, frames)
    return [(s, min(s + size, frames)) for s in range(0, frames, size)]


def sample_indices(start: int, end: int, count: int) -> list[int]:
    """``count`` evenly spaced frames of ``[start, end)`` (all of them if it is shorter), each in
    the middle of its share of the shot."""
    length = end - start
    if length <= count:
        return list(range(start, end))
    step = length // count
    return [start + step // 2 + step * j for j in range(count)]


def decode_size(width: int, height: int, short_side: int = DECODE_SHORT_SIDE) -> tuple[int, int] | None:
    """The ``(w, h)`` to decode a ``width`` x ``height`` video at for embedding (short side
    ``short_side``), or ``None`` when it is no larger than that already."""
    short = min(width, height)
    if short <= short_side:
        return None
    scale = short_side / short
    return (short_side, max(1, round(height * scale))) if width <= height else \
        (max(1, round(width * scale)), short_side)


def _clean_shots(shots: Sequence[tuple[int, int]], frames: int) -> list[tuple[int, int]]:
    out = sorted({(max(0, int(s)), min(frames, int(e))) for s, e in shots})
    out = [(s, e) for s, e in out if e > s]
    return out or [(0, frames)]


def open_embedder(model: ModelArg, device: str | None = None, dtype: str | None = None) -> Embedder:
    """``model`` if it is already an embedder, else the registry's CLIP embedder loading it."""
    if isinstance(model, Embedder):
        return model
    return backends.create("embed", "clip", model=model, device=device, dtype=dtype)


def thumbnail_png(image: np.ndarray) -> bytes:
    """A PNG of ``image`` at most ``THUMB_WIDTH`` pixels wide."""
    import cv2

    from kinema.media.image import encode_png

    h, w = image.shape[:2]
    if w > THUMB_WIDTH:
        size = (THUMB_WIDTH, max(2, round(h * THUMB_WIDTH / w)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return encode_png(np.ascontiguousarray(image))


def decode_samples(reader: VideoReader, shots: Sequence[tuple[int, int]], samples_per_shot: int,
                   size: tuple[int, int] | None) -> Iterator[Sample]:
    """Each shot's sampled frames, decoded sequentially from the shot's keyframe at ``size``."""
    for shot in shots:
        idx = sample_indices(shot[0], shot[1], samples_per_shot)
        step = idx[1] - idx[0] if len(idx) > 1 else 1
        for i, image in zip(idx, reader.frames(idx[0], idx[-1] + 1, step, size=size), strict=True):
            yield Sample(shot, i, image)


def _background(items: Iterator[T], depth: int) -> Iterator[T]:
    """``items``, produced ahead by a thread (up to ``depth`` waiting); closing this stops it."""
    out: queue.Queue[tuple[str, Any]] = queue.Queue(depth)
    stop = threading.Event()

    def put(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                out.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put("item", item):
                    return
            put("done", None)
        except BaseException as exc:  # handed to the consumer, which raises it
            put("error", exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # in the thread that ran it: a generator's cleanup (its decoder) runs now

    thread = threading.Thread(target=work, daemon=True, name="kinema-index-decode")
    thread.start()
    try:
        while True:
            kind, value = out.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def _batched(items: Iterator[T], n: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def embed_video(video: Path, embedder: Embedder, *, shots: ShotFinder | None = None,
                samples_per_shot: int = 3, batch_size: int = 32,
                thumbnails: bool = True) -> tuple[list[dict[str, Any]], VideoTiming]:
    """Rows for the index for every sampled frame of ``video`` (``video_key`` left empty), and
    where the time went."""
    steps = embed_steps(video, embedder, shots=shots, samples_per_shot=samples_per_shot,
                        batch_size=batch_size, thumbnails=thumbnails)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def embed_steps(video: Path, embedder: Embedder, *, shots: ShotFinder | None = None,
                samples_per_shot: int = 3, batch_size: int = 32, thumbnails: bool = True,
                ) -> Generator[int, None, tuple[list[dict[str, Any]], VideoTiming]]:
    """:func:`embed_video`, yielding how many of the video's frames it has got through after
    each batch. A file that cannot be read raises a :class:`KinemaError` naming it; the
    model's own errors pass through as they are."""
    import time

    from kinema.media import open_video

    timing = VideoTiming()
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with reading(video):
        reader = open_video(video, prefetch=False)
    with reader:
        n = len(reader)
        with reading(video):
            ranges = _clean_shots(shots(video) if shots is not None else chunk_shots(n, float(reader.fps)), n)
        duration = float(reader.duration)

        def seconds(i: int) -> float:
            return duration if i >= n else float(reader.timestamp(i))

        def decoded() -> Iterator[tuple[Sample, bytes]]:
            with reading(video):
                for sample in decode_samples(reader, ranges, samples_per_shot, decode_size(*reader.size)):
                    yield sample, thumbnail_png(sample.image) if thumbnails else b""

        timing.open_s = time.perf_counter() - t0
        stream = _background(decoded(), 2 * batch_size)
        try:
            for batch in _batched(stream, batch_size):
                t1 = time.perf_counter()
                vectors = embedder.images([s.image for s, _ in batch])
                timing.embed_s += time.perf_counter() - t1
                for (sample, thumb), vector in zip(batch, vectors, strict=True):
                    (s, e), i = sample.shot, sample.frame
                    rows.append({"vector": vector, "video": str(video), "video_key": "", "shot_start": s,
                                 "shot_end": e, "start": seconds(s), "end": seconds(e), "frame": i,
                                 "time": seconds(i), "thumbnail": thumb})
                yield batch[-1][0].frame + 1
        finally:
            stream.close()  # stops the decoding thread before the reader closes
    timing.frames = n
    timing.samples = len(rows)
    timing.total_s = time.perf_counter() - t0
    return rows, timing


@contextlib.contextmanager
def reading(video: Path) -> Iterator[None]:
    """Any failure while reading ``video`` as a :class:`CorruptMediaError` about it, so that a
    damaged or degenerate file is skipped, not the end of a batch."""
    try:
        yield
    except KinemaError:
        raise
    except Exception as exc:  # FFmpeg, OpenCV or numpy choking on what the file holds
        raise CorruptMediaError(f"cannot be read ({type(exc).__name__}: {exc})", path=video) from exc


@dataclass
class VideoTiming:
    """Where one video's indexing time went (for benchmarks): ``embed_s`` is the model's share;
    the rest of ``total_s`` is opening, decoding and thumbnails not hidden behind the model."""

    frames: int = 0
    samples: int = 0
    open_s: float = 0.0
    embed_s: float = 0.0
    total_s: float = 0.0


def _check_model(index: Index, embedder: Embedder) -> None:
    recorded = index.meta.get("model_id")
    if recorded and recorded != embedder.model_id and index.count():
        raise InvalidArgumentError(f"this index was built with {recorded}, not {embedder.model_id}",
                                   path=index.db_dir, hint="use the same --model, or a new index folder")


def index_videos(paths: Sequence[str | os.PathLike[str]], db_dir: str | os.PathLike[str], *,
                 model: ModelArg = None, shots: ShotFinder | None = None, samples_per_shot: int = 3,
                 device: str | None = None, dtype: str | None = None, batch_size: int = 32,
                 ray: bool = False) -> Steps[None]:
    """Index the videos among ``paths`` (files, or folders searched recursively) into the index
    at ``db_dir``, yielding progress in frames over all the videos that need indexing.

    ``model`` is a CLIP folder or registry name (or an :class:`Embedder`); ``shots(video)`` gives
    a video's shots as ``(start, end)`` frames (default: ~2 s chunks). Each video gets a
    message, ``"NAME: unchanged"``, ``"NAME: indexed N frames"`` (a checkpoint: its rows are
    stored) or ``"NAME: failed: why"``, the unchanged and unopenable ones at the start. A video
    that cannot be read (damaged, not a video, smaller than ``MIN_SIDE`` pixels) is logged as a
    warning and skipped and the rest are indexed; a :class:`MediaError` at the end says when
    none of them could be. With ``ray`` the videos are embedded by a pool of Ray actors (one
    model each; ``$KINEMA_RAY`` is the cluster address, else a local one), the same
    ``embed_video`` as here; rows are written here.
    """
    if samples_per_shot < 1:
        raise InvalidArgumentError(f"samples per shot must be >= 1, got {samples_per_shot}")
    videos = find_videos(paths)
    if not videos:
        raise InvalidArgumentError(f"no videos to index in {', '.join(str(p) for p in paths)}",
                                   hint=f"kinema indexes {' '.join(VIDEO_EXTENSIONS)} files "
                                        "outside hidden folders")
    index = Index(db_dir)
    known = index.videos()  # one scan, not one filtered count per video
    todo: list[tuple[Path, str]] = []
    frames: dict[Path, int] = {}
    notes: list[str] = []  # the unchanged and unreadable videos
    failed = 0
    for video in videos:
        try:
            key = video_key(video)
            if known.get(str(video)) == key:
                notes.append(f"{video.name}: unchanged")
                continue
            frames[video] = indexable_frames(video)
        except (KinemaError, OSError) as exc:
            failed += 1
            notes.append(_skipped(video, _why(exc)))
            continue
        todo.append((video, key))
    total, finished, added = sum(frames.values()), 0, 0
    yield Progress(0, total)
    for note in notes:
        yield Progress(0, total, message=note)
    options = {"shots": shots, "samples_per_shot": samples_per_shot, "batch_size": batch_size}
    results = (_embed_with_ray(todo, model, device, dtype, options) if ray and todo
               else _embed_here(todo, model, device, dtype, options, index))
    for item in results:
        if isinstance(item, int):  # frames through the video being embedded
            yield Progress(finished + item, total)
            continue
        video, key, outcome, identity = item
        finished += frames[video]
        if isinstance(outcome, str):
            failed += 1
            yield Progress(finished, total, message=_skipped(video, outcome))
            continue
        for row in outcome:
            row["video_key"] = key
        index.remove(str(video))  # an older version of the file
        index.add(outcome)
        if index.meta.get("model_id") != identity["model_id"]:
            index.set_meta(**identity)
        added += len(outcome)
        yield Progress(finished, total, message=f"{video.name}: indexed {len(outcome)} frames",
                       checkpoint=True)
    if added:
        index.optimize(rebuild=False)  # compact the new rows' files, fold them into the ANN index
    if failed == len(videos):
        raise MediaError(f"nothing could be indexed: none of the {failed} videos can be read"
                         if failed > 1 else "nothing could be indexed: the video cannot be read")


MIN_SIDE = 16
"""Pictures smaller than this (pixels, either side) hold nothing a model could recognise."""


def indexable_frames(video: Path) -> int:
    """How many frames ``video`` has, or a :class:`KinemaError` saying why it cannot be indexed."""
    from kinema.core.errors import UnsupportedMediaError
    from kinema.media import open_video

    with reading(video), open_video(video, prefetch=False) as reader:
        width, height = reader.size
        if min(width, height) < MIN_SIDE:
            raise UnsupportedMediaError(f"is {width}x{height}: too small to index", path=video,
                                        hint=f"videos need at least {MIN_SIDE} pixels a side")
        return len(reader)


def _why(exc: BaseException) -> str:
    """What went wrong, without the file name the warning already gives."""
    if isinstance(exc, KinemaError):
        return exc.reason + (f"; {exc.hint}" if exc.hint else "")
    return f"{type(exc).__name__}: {exc}"


def _skipped(video: Path, why: str) -> str:
    """Warn that ``video`` is left out, and say so in a line for the user."""
    log.warning("%s: not indexed: %s", video, why)
    return f"{video.name}: failed: {why}"


Embedded = tuple[Path, str, Any, dict[str, Any]]
"""``(video, key, rows or why it could not be read, model identity)``."""


def _identity(embedder: Embedder) -> dict[str, Any]:
    model_dir = getattr(embedder, "model_dir", None)
    return {"model_id": embedder.model_id, "dim": embedder.dim,
            "model_dir": str(Path(model_dir).resolve()) if model_dir is not None else None}


def _embed_here(todo: Sequence[tuple[Path, str]], model: ModelArg, device: str | None, dtype: str | None,
                options: dict[str, Any], index: Index) -> Iterator[Embedded | int]:
    """For each video, how far through it the embedding is (ints), then ``(video, key, rows or
    why it could not be read, model identity)``, in this process."""
    embedder: Embedder | None = None
    for video, key in todo:
        if embedder is None:  # loaded only when something needs embedding
            embedder = open_embedder(model, device, dtype)
            _check_model(index, embedder)
        try:
            rows, _ = yield from embed_steps(video, embedder, **options)
        except KinemaError as exc:
            yield video, key, _why(exc), _identity(embedder)
            continue
        yield video, key, rows, _identity(embedder)


def _embed_with_ray(todo: Sequence[tuple[Path, str]], model: ModelArg, device: str | None,
                    dtype: str | None, options: dict[str, Any]) -> Iterator[Embedded]:
    """The same as :func:`_embed_here`, by a pool of Ray actors, in the order they finish."""
    from kinema.app.ray_pool import map_actors

    results = map_actors(partial(open_embedder, model, device, dtype), partial(_embed_one, options),
                         todo, most=len(todo))
    return (embedded for _job, embedded in results)


def _embed_one(options: dict[str, Any], embedder: Embedder, job: tuple[Path, str]) -> Embedded:
    """One video's rows (or why it could not be read), as a Ray actor embeds it."""
    video, key = job
    try:
        rows, _ = embed_video(video, embedder, **options)
    except KinemaError as exc:
        return video, key, _why(exc), _identity(embedder)
    return video, key, rows, _identity(embedder)


def _search_model(index: Index, model: ModelArg) -> ModelArg:
    """The model to embed queries with: ``model``, else the one that built the index if its
    folder is still there, else the registry default."""
    if model is not None:
        return model
    recorded = index.meta.get("model_dir")
    if recorded and (Path(recorded) / "config.json").is_file():
        return recorded
    return None


def _read_query_image(image: str | os.PathLike[str]) -> np.ndarray:
    from kinema.media.image import read_image

    pixels = read_image(image)
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    return as_rgb(pixels)


def search(db_dir: str | os.PathLike[str], query: str | None = None,
           image: str | os.PathLike[str] | None = None, top: int = 10, model: ModelArg = None, *,
           device: str | None = None, dtype: str | None = None) -> list[Hit]:
    """The ``top`` shots of the index at ``db_dir`` that best match the words ``query``, the
    picture ``image``, or both (their embeddings averaged), best first."""
    if query is None and image is None:
        raise InvalidArgumentError("give words or a picture to search for")
    if query is not None and not query.strip():
        raise InvalidArgumentError("the query is empty", hint='give words, e.g. "a dog on a beach"')
    db = Path(db_dir)
    if not (db / "frames.lance").is_dir():
        raise InvalidArgumentError("no index here", path=db, hint="index videos into it first: kinema index")
    index = Index(db)
    if index.count() == 0:
        return []
    embedder = open_embedder(_search_model(index, model), device, dtype)
    _check_model(index, embedder)
    vectors = []
    if query is not None:
        vectors.append(embedder.texts([query])[0])
    if image is not None:
        vectors.append(embedder.images([_read_query_image(image)])[0])
    return index.search(normalize_rows(np.sum(vectors, axis=0)), top)


def classify(video: str | os.PathLike[str], labels: Sequence[str], shots: Sequence[tuple[int, int]],
             model: ModelArg = None, *, samples_per_shot: int = 3, device: str | None = None,
             dtype: str | None = None) -> list[tuple[int, int, str, float]]:
    """Zero-shot labels: for each shot ``(start, end)`` (frames), the label whose text ("a photo
    of {label}") best matches the mean of the shot's sampled frames, and its probability among
    ``labels`` (CLIP's softmax over the labels)."""
    from kinema.media import open_video

    labels = [str(label).strip() for label in labels]
    if not labels or not all(labels):
        raise InvalidArgumentError("give at least one label, none empty", hint='e.g. "dog,cat,car"')
    if samples_per_shot < 1:
        raise InvalidArgumentError(f"samples per shot must be >= 1, got {samples_per_shot}")
    embedder = open_embedder(model, device, dtype)
    words = embedder.texts([PROMPT.format(label) for label in labels])
    scale = float(getattr(embedder, "logit_scale", 100.0))
    with open_video(video, prefetch=False) as reader:
        n = len(reader)
        wanted = [(max(0, int(s)), min(n, int(e))) for s, e in shots]
        for s, e in wanted:
            if e <= s:
                raise InvalidArgumentError(f"shot {s}-{e} holds no frames of {n}", path=video)
        size = decode_size(*reader.size)
        samples = list(decode_samples(reader, sorted(set(wanted)), samples_per_shot, size))
    vectors = embedder.images([s.image for s in samples])
    means: dict[tuple[int, int], np.ndarray] = {}
    for shot in {s.shot for s in samples}:
        members = [k for k, s in enumerate(samples) if s.shot == shot]
        means[shot] = normalize_rows(vectors[members].mean(axis=0))
    out = []
    for shot in wanted:
        logits = scale * (words @ means[shot])
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        best = int(np.argmax(probs))
        out.append((shot[0], shot[1], labels[best], float(probs[best])))
    return out
