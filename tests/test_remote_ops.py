"""The other commands with --remote against a worker on 127.0.0.1 (uvicorn in a thread): t2v
(tiny Wan named to the server), upscale, propagate and track each equal the local run: the
same bytes (the t2v clip and the track's label maps: the same frames and arrays) and the same
recipe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from typer.testing import CliRunner

from conftest import serve_in_thread
from kinema.cli.main import app

TOKEN = "remote-ops-token-0123456789abcdef"
W, H, N = 96, 72, 8


def invoke(args: list[object], remote: str | None = None):
    extra = ["--remote", remote] if remote else []
    return CliRunner().invoke(app, [*map(str, args), *extra],
                              env={"KINEMA_REMOTE": None, "KINEMA_TOKEN": TOKEN})


def recipe(path: Path) -> dict:
    """The first recipe of ``path``'s record, without what differs between two runs."""
    op = json.loads(Path(f"{path}.provenance.json").read_text())["operations"][0]
    for volatile in ("created", "id"):
        op.pop(volatile)
    return op


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kinema.media.synth import write_clip

    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", n=N, size=(W, H), fps=24)


@pytest.fixture
def url(tmp_path: Path):
    with serve_in_thread(tmp_path / "store", TOKEN) as found:
        yield found


def both(tmp_path: Path, name: str, args: list[object], url: str) -> tuple[Path, Path]:
    """Run ``args`` here and on the worker; the two outputs."""
    local, remote = tmp_path / "local" / name, tmp_path / "remote" / name
    for out, where in ((local, None), (remote, url)):
        out.parent.mkdir(exist_ok=True)
        r = invoke([*args, "-o", out], where)
        assert r.exit_code == 0, r.output
    return local, remote


def same_tree(a: Path, b: Path) -> None:
    if a.is_file():
        assert a.read_bytes() == b.read_bytes()
        return
    names = sorted(p.name for p in a.iterdir())
    assert names and names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def same_frames(a: Path, b: Path) -> None:
    """Two movies with equal frames at equal times (two local t2v runs do not give equal
    bytes either: the H.264 stream is equal, the container's layout is not)."""
    from kinema.media import open_video

    with open_video(a, prefetch=False) as first, open_video(b, prefetch=False) as second:
        assert (len(first), first.fps, first.size) == (len(second), second.fps, second.size)
        for i in range(len(first)):
            assert np.array_equal(first[i], second[i]), i


def test_remote_t2v_equals_local(tiny_wan: Path, tmp_path: Path) -> None:
    with serve_in_thread(tmp_path / "store", TOKEN, models={"tiny-wan": tiny_wan}) as url:
        args = ["t2v", "a red fox", "--frames", 5, "--size", "32x32", "--seed", 3]
        local = tmp_path / "local.mp4"
        r = invoke([*args, "--model", tiny_wan, "--device", "cpu", "-o", local])
        assert r.exit_code == 0, r.output
        remote = tmp_path / "remote.mp4"
        r = invoke([*args, "--model", "tiny-wan", "-o", remote], url)
        assert r.exit_code == 0, r.output
        same_frames(local, remote)
        assert recipe(remote) == recipe(local)
        folder = tmp_path / "frames"
        r = invoke([*args, "--model", "tiny-wan", "-o", folder], url)
        assert r.exit_code == 2 and "writes a movie" in r.output and not folder.exists()


def test_remote_upscale_of_an_image_equals_local(url: str, tmp_path: Path) -> None:
    from kinema.media.image import write_image

    picture = write_image(tmp_path / "small.png",
                          np.random.default_rng(1).integers(0, 255, (24, 32, 3), np.uint8))
    local, remote = both(tmp_path, "big.png", ["upscale", picture, "--scale", 2, "--model",
                                               "lanczos"], url)
    same_tree(local, remote)
    assert recipe(local) == recipe(remote)


def test_remote_propagate_equals_local(url: str, clip: Path, tmp_path: Path) -> None:
    from kinema.media import open_video
    from kinema.media.image import write_image

    with open_video(clip, prefetch=False) as reader:
        key0, key7 = (255 - reader[0]), np.ascontiguousarray(reader[N - 1][..., ::-1])
    keys = [write_image(tmp_path / "k0.png", key0), write_image(tmp_path / "k7.png", key7)]
    local, remote = both(tmp_path, "styled", ["propagate", clip, "--key", f"0={keys[0]}",
                                              "--key", f"{N - 1}={keys[1]}"], url)
    same_tree(local, remote)
    assert len(list(remote.iterdir())) == N and recipe(local) == recipe(remote)


def test_remote_track_equals_local(url: str, clip: Path, tmp_path: Path) -> None:
    from kinema.media.image import encode_png

    prompt = np.zeros((H, W), np.uint8)
    prompt[20:50, 30:60] = 255
    picture = tmp_path / "prompt.png"
    picture.write_bytes(encode_png(prompt))
    local, remote = both(tmp_path, "masks.npz", ["track", clip, "--object", 2,
                                                 "--mask", f"{picture}@3"], url)
    a, b = np.load(local)["masks"], np.load(remote)["masks"]
    assert a.shape == (N, H, W) and np.array_equal(a, b)
    assert not a[:3].any() and set(np.unique(a[3:])) == {0, 2}  # object 2 from its prompt on


def test_a_channel_filmed_on_a_worker_makes_the_segments_made_here(tiny_wan: Path,
                                                                   tiny_musicgen: Path,
                                                                   tmp_path: Path,
                                                                   monkeypatch) -> None:
    from kinema.app.tv_jobs import ChannelSpec, check_spec, generated_segments
    from kinema.broadcast.live import ChannelFormat
    from kinema.core.errors import InvalidArgumentError

    monkeypatch.setenv("KINEMA_MODELS", str(tmp_path / "no-models"))  # Lanczos: no 4x model
    channel = ChannelFormat(width=160, height=96, fps=12)
    made = {}
    with serve_in_thread(tmp_path / "store", TOKEN, models={"tiny-wan": tiny_wan}) as url:
        for where in ("here", "remote"):
            remote = {"remote": url, "token": TOKEN, "t2v": "tiny-wan"} if where == "remote" \
                else {"t2v": str(tiny_wan)}
            spec = ChannelSpec(theme="a lighthouse in a storm", state=tmp_path / where,
                               music=str(tiny_musicgen), shots=1, device="cpu", **remote)
            segments = generated_segments(spec, channel)
            made[where] = next(segments)  # a shot of the first round, scored into the second's
            segments.close()
        with pytest.raises(InvalidArgumentError, match="--t2v"):  # a folder here is no name there
            check_spec(ChannelSpec(theme="x", state=tmp_path / "x", remote=url, t2v=str(tiny_wan),
                                   music=str(tiny_musicgen)))
    here, there = made["here"], made["remote"]
    assert (here.title, here.duration) == (there.title, there.duration)
    for name in ("r0000-s00.mp4", "r0000-s00/smooth.mp4", "r0001-s00/smooth.mp4"):
        assert (there.path.parent / name).read_bytes() == (here.path.parent / name).read_bytes(), name
    record = json.loads((there.path.parent / "r0000-s00" / "clip.mp4.provenance.json").read_text())
    assert record["remote"]["server"] == url
