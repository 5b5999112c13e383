"""kinema tv end to end, bounded in time: a channel from a library of real clips with no model
at all, and a generated one with tiny models (template writer, tiny Wan, tiny MusicGen), to
HLS; a shot that fails is skipped and the channel goes on; status; bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kinema.app.tv_jobs import ChannelSpec, channel_status, run_channel
from kinema.broadcast.live import ChannelFormat
from kinema.core.errors import KinemaError

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
CLIPS = ("dog.mp4", "coffee.mp4", "juggle.mp4")
SMALL = ChannelFormat(width=320, height=180, fps=12)


def hls_segments(folder: Path) -> list[str]:
    playlist = (folder / "index.m3u8").read_text()
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


@pytest.mark.skipif(not all((MEDIA / c).is_file() for c in CLIPS), reason=f"no shared clips in {MEDIA}")
def test_a_library_channel_needs_no_model(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    for name in CLIPS:
        (library / name).symlink_to(MEDIA / name)
    spec = ChannelSpec(theme="a day with the dog", state=tmp_path / "state", library=library,
                       segment_seconds=3.0, ahead=6.0)
    result = run_channel(spec, hls=tmp_path / "hls", max_seconds=8, realtime=False, channel=SMALL,
                         ready=6)
    assert result.broadcast.reason == "max-duration" and result.broadcast.seconds >= 8
    assert result.made >= 2 and result.broadcast.segments >= 2  # shots changed on air
    assert len(hls_segments(tmp_path / "hls")) >= 3
    now = json.loads((tmp_path / "hls" / "now.json").read_text())
    assert "a day with the dog" in json.dumps(now)
    status = channel_status(tmp_path / "state")
    assert status.aired >= 2
    shown = subprocess.run([sys.executable, "-m", "kinema", "tv", "status", "--state",
                            str(tmp_path / "state")], capture_output=True, text=True)
    assert shown.returncode == 0 and "queue:" in shown.stdout, shown.stderr


def test_a_generated_channel_skips_a_failed_shot(tmp_path: Path, tiny_wan: Path, tiny_musicgen: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from kinema.app import tv_jobs

    real = tv_jobs._Films.film
    calls = []

    def film(self, shot, seed, folder, channel, overlap):  # the second shot fails to generate
        calls.append(shot.prompt)
        if len(calls) == 2:
            raise RuntimeError("the model ran out of memory")
        return real(self, shot, seed, folder, channel, overlap)

    monkeypatch.setattr(tv_jobs._Films, "film", film)
    spec = ChannelSpec(theme="a lighthouse in a storm", state=tmp_path / "state", t2v=str(tiny_wan),
                       music=str(tiny_musicgen), shots=3, ahead=1.0, device="cpu")
    result = run_channel(spec, hls=tmp_path / "hls", max_seconds=4, realtime=False, channel=SMALL,
                         ready=1)
    assert result.skipped >= 1 and result.made >= 1
    assert result.broadcast.seconds >= 4 and len(hls_segments(tmp_path / "hls")) >= 2
    aired = " ".join(result.broadcast.titles)
    assert "lighthouse" in aired.lower()


@pytest.mark.parametrize(("args", "message"), [
    (["  ", "--hls", "h"], "theme is empty"),
    (["dogs", "--library", "missing", "--hls", "h"], "library folder not found"),
    (["status", "--state", "nowhere"], "state folder not found"),
])
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "kinema", "tv", *args], capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert done.stderr.count("error:") == 1 and "Traceback" not in done.stderr


def test_a_channel_that_goes_nowhere_is_refused(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    with pytest.raises(KinemaError, match="goes nowhere"):
        run_channel(ChannelSpec(theme="x", state=tmp_path / "state", library=library))


def test_one_channel_at_a_time_writes_a_state_folder(tmp_path: Path) -> None:
    from kinema.core.locks import acquire

    library = tmp_path / "library"
    library.mkdir()
    state = tmp_path / "state"
    state.mkdir()
    lock = acquire(state / "LOCK", RuntimeError)  # another channel of this process holds it
    with pytest.raises(KinemaError, match="state of a channel running"):
        run_channel(ChannelSpec(theme="x", state=state, library=library), hls=tmp_path / "hls")
    assert lock.is_file()


@pytest.mark.skipif(not all((MEDIA / c).is_file() for c in CLIPS), reason=f"no shared clips in {MEDIA}")
def test_serve_puts_the_channel_and_its_page_on_127_0_0_1(tmp_path: Path) -> None:
    import threading
    import urllib.request

    from kinema.broadcast.nginx import free_port, nginx_missing

    if nginx_missing():
        pytest.skip(nginx_missing())
    library = tmp_path / "library"
    library.mkdir()
    for name in CLIPS[:2]:
        (library / name).symlink_to(MEDIA / name)
    port, stop, seen = free_port(), threading.Event(), {}

    def watch() -> None:  # a viewer: the page, then the playlist once it is there
        for _ in range(200):
            try:
                seen["page"] = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
                seen["hls"] = urllib.request.urlopen(f"http://127.0.0.1:{port}/hls/index.m3u8",
                                                     timeout=2).read()
                break
            except OSError:
                stop.wait(0.1)

    viewer = threading.Thread(target=watch)
    viewer.start()
    spec = ChannelSpec(theme="dogs", state=tmp_path / "state", library=library, segment_seconds=2.0,
                       ahead=4.0)
    result = run_channel(spec, serve=port, max_seconds=5, channel=SMALL, ready=2)
    viewer.join()
    assert result.broadcast.seconds >= 5
    assert b"hls" in seen["page"].lower() and b"#EXTM3U" in seen["hls"]
    with pytest.raises(OSError):  # the server went with the channel
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)


def test_music_crossfades_from_one_shot_into_the_next() -> None:
    import numpy as np

    from kinema.app.tv_jobs import scored

    overlap, samples = 100, 1000
    first = np.full((2, samples + 2 * overlap), 0.5, np.float32)
    head = np.full((2, overlap), -0.5, np.float32)
    sound = scored(first, samples, head, overlap)
    assert sound.shape == (2, samples)
    assert np.allclose(sound[:, :samples - overlap], 0.5)  # the shot's own music (after its head)
    tail = sound[0, samples - overlap:]
    assert tail[0] > 0.45 and tail[-1] < -0.45 and np.all(np.diff(tail) < 0)  # fading across


def test_a_generated_channel_over_rtmp_read_by_a_viewer(tmp_path: Path, tiny_wan: Path,
                                                          tiny_musicgen: Path) -> None:
    from conftest import RtmpViewer, check_continuous
    from kinema.broadcast.nginx import NginxRtmp, nginx_missing

    if nginx_missing():
        pytest.skip(nginx_missing())
    spec = ChannelSpec(theme="a lighthouse in a storm", state=tmp_path / "state", t2v=str(tiny_wan),
                       music=str(tiny_musicgen), shots=3, ahead=2.0, device="cpu")
    # keyframes every second, as a live viewer joins at one
    channel = ChannelFormat(width=320, height=180, fps=12, keyframe_seconds=1.0, preset="ultrafast")
    with NginxRtmp() as server:
        viewer = RtmpViewer(server.url("channel"), seconds=30, delay=0.7, index=lambda _image: 0)
        viewer.start()
        try:
            result = run_channel(spec, rtmp=server.url("channel"), max_seconds=8, channel=channel,
                                 ready=2)
        finally:
            time.sleep(0.5)
            viewer.finish()
    assert result.broadcast.seconds >= 8 and result.broadcast.segments >= 2  # shots changed on air
    assert len(viewer.frames) >= channel.fps  # the viewer joined and watched the live stream
    check_continuous(viewer.frames)  # timestamps go forward, no gap over 1 s
