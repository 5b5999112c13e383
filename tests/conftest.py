"""Shared fixtures: synthetic clips with frame indices in their pixels, the real sample clips."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from kinema.media.synth import decode_index

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Proxies and caches go to a temp folder, never the user's cache; the editor's settings
    (recent projects, the remote worker) to an empty config folder; no remote worker from the
    environment."""
    monkeypatch.setenv("KINEMA_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    monkeypatch.setenv("KINEMA_HWACCEL", "none")
    for variable in ("KINEMA_REMOTE", "KINEMA_TOKEN"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def make_clip(clip_dir: Path):
    """``make_clip(name, **write_clip_kwargs)``: write once per session, return the path."""
    from kinema.media.synth import write_clip

    made: dict[str, Path] = {}

    def make(name: str, **kwargs: object) -> Path:
        if name not in made:
            made[name] = write_clip(clip_dir / name, **kwargs)  # type: ignore[arg-type]
        return made[name]

    return make


@pytest.fixture(scope="session")
def h264_bframes(make_clip) -> Path:
    """H.264 with B-frames and a long GOP: 150 frames, keyframes every 60."""
    return make_clip("bframes.mp4", n=150, size=(320, 240), fps=Fraction(30000, 1001),
                     gop=60, bframes=3)


@pytest.fixture(scope="session")
def vfr_times() -> list[Fraction]:
    steps = [33, 40, 50, 67, 100, 17, 83]
    times = [Fraction(0)]
    for i in range(79):
        times.append(times[-1] + Fraction(steps[(i * 5) % len(steps)], 1000))
    return times


@pytest.fixture(scope="session")
def vfr_mkv(make_clip, vfr_times: list[Fraction]) -> Path:
    return make_clip("vfr.mkv", n=len(vfr_times), times=vfr_times, gop=20, bframes=2)


def write_sound(path: Path, seconds: float = 0.1) -> Path:
    """A sound-only AAC file (no picture) of ``seconds`` of silence."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48000, layout="mono")
        n = int(48000 * seconds) // 1024 * 1024 or 1024
        for pts in range(0, n, 1024):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt",
                                               layout="mono")
            frame.sample_rate, frame.pts = 48000, pts
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def write_wav(path: Path, samples: np.ndarray, rate: int = 44100) -> Path:
    """``samples`` (mono float in [-1, 1]) as a 16-bit WAV file."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray((np.clip(samples, -1, 1) * 32767).astype(np.int16)[None],
                                           format="s16", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def decoded_audio(path: Path) -> tuple[np.ndarray, int, str]:
    """The first audio stream of ``path``: mono-mixed float samples, sample rate, codec name."""
    import av

    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        samples = np.concatenate([f.to_ndarray().mean(axis=0) for f in container.decode(audio)])
        return samples, audio.codec_context.sample_rate, audio.codec_context.name


def media(name: str) -> Path:
    """A real sample clip, or skip the test when ../shared/media is absent."""
    path = MEDIA / name
    if not path.is_file():
        pytest.skip(f"sample clip {path} is not present")
    return path


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def kinema_warnings():
    """Messages the library logs at warning level during the test."""
    handler = LogCapture()
    logger = logging.getLogger("kinema")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.WARNING)
    yield handler.messages
    logger.removeHandler(handler)
    logger.setLevel(old)


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight SDXL pipeline folder (``kinema models tiny sdxl``)."""
    pytest.importorskip("diffusers")
    from kinema.models.tiny_sdxl import build_tiny_sdxl

    return build_tiny_sdxl(tmp_path_factory.mktemp("models") / "sdxl")


@pytest.fixture(scope="session")
def tiny_controlnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight SDXL ControlNet matching :func:`tiny_sdxl`."""
    pytest.importorskip("diffusers")
    from kinema.models.tiny_sdxl import build_tiny_controlnet

    return build_tiny_controlnet(tmp_path_factory.mktemp("models") / "controlnet")


@pytest.fixture(scope="session")
def tiny_lora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random LoRA ``.safetensors`` for :func:`tiny_sdxl`'s UNet."""
    pytest.importorskip("peft")
    from kinema.models.tiny_sdxl import build_tiny_lora

    return build_tiny_lora(tmp_path_factory.mktemp("models") / "tiny_lora.safetensors")


@pytest.fixture(scope="session")
def tiny_animatediff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny AnimateDiff set (``kinema models tiny animatediff``): a folder holding
    ``sd15-base/``, ``animatediff-v1-5-3/``, ``controlnet-openpose-sd15/`` and
    ``controlnet-canny-sd15/``."""
    pytest.importorskip("diffusers")
    from kinema.models.tiny_video import build_tiny_animatediff

    return build_tiny_animatediff(tmp_path_factory.mktemp("models") / "animatediff")


@pytest.fixture(scope="session")
def tiny_wan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Wan 2.1 text-to-video pipeline folder (``kinema models tiny wan``)."""
    pytest.importorskip("diffusers")
    from kinema.models.tiny_video import build_tiny_wan

    return build_tiny_wan(tmp_path_factory.mktemp("models") / "wan")


@pytest.fixture(scope="session")
def tiny_wan_vace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Wan 2.1 VACE pipeline folder (``kinema models tiny wan-vace``)."""
    pytest.importorskip("diffusers")
    from kinema.models.tiny_video import build_tiny_wan_vace

    return build_tiny_wan_vace(tmp_path_factory.mktemp("models") / "wan-vace")


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Qwen2 instruct model with a chat template (``kinema models tiny llm``)."""
    pytest.importorskip("transformers")
    from kinema.models.tiny_llm import build_tiny_llm

    return build_tiny_llm(tmp_path_factory.mktemp("models") / "llm")


@pytest.fixture(scope="session")
def tiny_musicgen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight MusicGen folder (``kinema models tiny musicgen``)."""
    pytest.importorskip("transformers")
    pytest.importorskip("scipy")
    from kinema.models.tiny_music import build_tiny_musicgen

    return build_tiny_musicgen(tmp_path_factory.mktemp("models") / "musicgen")


# -- a live viewer (kinema tv) ------------------------------------------------------------


class RtmpViewer(threading.Thread):
    """A live viewer: reads an RTMP stream with PyAV and reconnects when it ends; records each
    frame's connection, wall time, stream time and ``index`` (the frame number stamped in it)."""

    def __init__(self, url: str, seconds: float, delay: float = 0.0,
                 index: Callable[[np.ndarray], int] | None = None) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.index = index or decode_index
        self.delay = delay
        self.until = time.monotonic() + seconds
        self.halt = threading.Event()
        self.frames: list[tuple[int, float, float, int]] = []  # connection, wall, time, index

    def run(self) -> None:
        import av

        connection = 0
        # A viewer that joins before the publisher can be dropped by the FLV demuxer
        # ("Invalid data") and must reconnect; a live viewer joins a running stream.
        self.halt.wait(self.delay)
        while not self.halt.is_set() and time.monotonic() < self.until:
            try:
                container = av.open(self.url, timeout=(2.0, 2.0))
            except av.error.FFmpegError:
                self.halt.wait(0.2)
                continue
            if not container.streams.video:  # joined before the publisher: try again
                container.close()
                self.halt.wait(0.2)
                continue
            connection += 1
            try:
                for frame in container.decode(video=0):
                    index = self.index(frame.to_ndarray(format="rgb24"))
                    self.frames.append((connection, time.monotonic(), float(frame.time or 0.0), index))
                    if self.halt.is_set() or time.monotonic() > self.until:
                        break
            except av.error.FFmpegError:
                pass
            finally:
                container.close()
            self.halt.wait(0.2)

    def finish(self) -> None:
        self.halt.set()
        self.join(10)
        assert not self.is_alive()


def check_continuous(frames: list[tuple[int, float, float, int]]) -> None:
    """Within each connection the timestamps go forward with no gap over 1 s."""
    for connection in {f[0] for f in frames}:
        times = [f[2] for f in frames if f[0] == connection]
        steps = [b - a for a, b in itertools.pairwise(times)]
        assert all(0 < s <= 1.0 for s in steps), (connection, [s for s in steps if not 0 < s <= 1.0])


def segment_starts(frames: list[tuple[int, float, float, int]]) -> int:
    """How many times the frame index falls back: a new segment went on air."""
    return sum(1 for a, b in itertools.pairwise(frames) if a[0] == b[0] and b[3] < a[3])


def tracked_project(base: Path, video: Path, masks: list[np.ndarray], name: str) -> Path:
    """A project made from ``video`` (at ``base``) holding mask track ``t1`` named ``name``,
    one mask per frame (``masks``, all the video's frames, of its size)."""
    from kinema.app.project_jobs import new_project
    from kinema.document import edits, store
    from kinema.document.masktrack import FrameState, MaskTrackStore
    from kinema.document.model import MaskTrackRef

    folder = new_project(base, video)
    height, width = masks[0].shape
    MaskTrackStore(folder / "masks" / "t1", len(masks), width, height, create=True).write_many(
        0, masks, FrameState.PROPAGATED)
    with store.ProjectFile(folder) as pf:
        pf.history.do(edits.add_mask_track(MaskTrackRef(id="t1", name=name, media_id="m1",
                                                        frames=len(masks), width=width,
                                                        height=height)))
        pf.save()
    return folder



def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_in_thread(store: Path, token: str | None, **options: object) -> Iterator[str]:
    """``kinema serve``'s app on uvicorn in a thread on 127.0.0.1; its URL. ``options`` go to
    ``create_app`` (``models``, ``workers``, ...). Stopped on exit."""
    import uvicorn

    from kinema.serve.app import create_app

    port = free_port()
    config = uvicorn.Config(create_app(store, token, 64, **options), host="127.0.0.1", port=port,
                            log_level="warning", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < end and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def disc_shot(folder: Path, n: int = 8, size: tuple[int, int] = (96, 72)) -> tuple[Path, Path]:
    """A synthetic clip and the label maps (``kinema track -o masks.npz``'s format) of a disc
    moving right across it, object 1."""
    from kinema.app.mask_outputs import NpzLabels
    from kinema.media.synth import write_clip

    width, height = size
    video = write_clip(folder / "shot.mp4", n=n, size=size, fps=24)
    yy, xx = np.mgrid[0:height, 0:width]
    writer = NpzLabels(folder / "masks.npz", n, size, overwrite=False)
    for i in range(n):
        disc = (xx - (width // 3 + 4 * i)) ** 2 + (yy - height // 2) ** 2 < (height // 4.5) ** 2
        writer.write(disc.astype(np.uint8))
    return video, writer.close()


@pytest.fixture(scope="session")
def salient_model() -> None:
    """The bundled salient-object model the cut-out falls back to, or skip."""
    from kinema.core.errors import KinemaError
    from kinema.models.bundled import model_file
    from kinema.vision.oneclick import SALIENT

    try:
        model_file(*SALIENT)
    except KinemaError as exc:
        pytest.skip(f"bundled u2netp is not here ({exc})")


@pytest.fixture
def job_events(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """Every progress event each editor job (``kinema.core.jobs.Job``) saw, in order, by the
    job's label."""
    from kinema.core.jobs import Job

    seen: dict[str, list] = {}
    see = Job._see

    def record(job: Job, event: object) -> None:
        seen.setdefault(job.label, []).append(event)
        see(job, event)

    monkeypatch.setattr(Job, "_see", record)
    return seen
