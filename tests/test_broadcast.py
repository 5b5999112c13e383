"""kinema tv on air: the rolling playlist, the broadcaster (RTMP and HLS), nginx-rtmp.

Segments are synthetic clips whose frames carry their own index (``media.synth``) with a tone,
so a client reading the live stream can tell where each segment starts (the index falls back to
0). Servers run on 127.0.0.1 only, every test is bounded in time, and every nginx is stopped in
a ``finally`` (the context manager) so none outlives the test.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import re
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import RtmpViewer as Client
from conftest import check_continuous, segment_starts
from kinema.broadcast import Broadcaster, ChannelFormat, NginxRtmp, Playlist, nginx_missing
from kinema.media.synth import decode_index, tone, write_clip

FPS = 25
CHANNEL = ChannelFormat(width=320, height=240, fps=FPS, video_bitrate=900_000,
                        keyframe_seconds=1.0, preset="ultrafast")
# The three segments: 2.0 s, 2.4 s and 1.6 s.
LENGTHS = (50, 60, 40)

needs_nginx = pytest.mark.skipif(nginx_missing() is not None, reason=nginx_missing() or "")


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("segments")
    return [write_clip(folder / f"shot{i}.mp4", n, (320, 240), FPS,
                       audio=tone(330 + 110 * i, n / FPS)) for i, n in enumerate(LENGTHS)]


def make_playlist(state: Path, segments: list[Path], clock=time.time) -> Playlist:
    playlist = Playlist(state, clock=clock)
    for i, path in enumerate(segments):
        playlist.add(path, title=f"shot {i}")
    return playlist


def media_sequence(playlist: Path) -> int | None:
    try:
        match = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist.read_text())
    except OSError:
        return None
    return int(match.group(1)) if match else None


# -- the playlist ---------------------------------------------------------------------------


def test_playlist_queue_repeats_and_reload(tmp_path: Path, segments: list[Path]):
    now = [1000.0]
    playlist = make_playlist(tmp_path / "state", segments, clock=lambda: now[0])
    status = playlist.status()
    assert [q["title"] for q in status.queue] == ["shot 0", "shot 1", "shot 2"]
    assert status.ahead_s == pytest.approx(6.0, abs=0.1) and status.behind_s == 0

    played = []
    for _ in range(3):
        seg = playlist.next()
        playlist.started(seg)
        now[0] += seg.duration
        playlist.finished(seg)
        played.append(seg.title)
    assert played == ["shot 0", "shot 1", "shot 2"]
    assert playlist.status().queue == [] and playlist.status().ahead_s == 0

    # Nothing new arrives: the least recently aired segment repeats, and we fall behind.
    seg = playlist.next()
    assert seg.title == "shot 0"
    playlist.started(seg)
    now[0] += 1.0
    status = playlist.status()
    assert status.on_air["title"] == "shot 0" and status.on_air["repeat"]
    assert status.behind_s == pytest.approx(1.0)

    # A restart (a new Playlist on the same folder) continues: shot 0 is still on air.
    again = Playlist(tmp_path / "state", clock=lambda: now[0])
    assert again.next().title == "shot 0"
    again.finished(again.next())
    assert again.next().title == "shot 1"  # then the next least recently aired
    fresh = again.add(segments[2], title="new shot")
    assert again.next().id == fresh.id  # new material goes before repeats
    again.started(fresh)
    assert again.status().behind_s == 0
    history = json.loads((tmp_path / "state" / "playlist.json").read_text())["history"]
    assert [h["title"] for h in history] == ["shot 0", "shot 1", "shot 2", "shot 0"]


def test_playlist_drops_missing_files(tmp_path: Path, segments: list[Path]):
    copy = tmp_path / "gone.mp4"
    copy.write_bytes(segments[0].read_bytes())
    playlist = Playlist(tmp_path / "state")
    playlist.add(copy, title="gone")
    playlist.add(segments[1], title="kept")
    copy.unlink()
    assert playlist.next().title == "kept"
    assert playlist.status().segments == 1


# -- the broadcaster --------------------------------------------------------------------------


@needs_nginx
def test_live_to_rtmp_and_hls(tmp_path: Path, segments: list[Path]):
    playlist = make_playlist(tmp_path / "state", segments)
    hls = tmp_path / "hls"
    with NginxRtmp() as server:
        url = server.url("channel")
        client = Client(url, seconds=20, delay=0.7)
        client.start()
        broadcaster = Broadcaster(playlist, rtmp=url, hls=hls, channel=CHANNEL,
                                  hls_time=1.0, hls_list_size=3, max_seconds=9.0)
        sequences: list[int] = []
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.25):
                seq = media_sequence(hls / "index.m3u8")
                if seq is not None:
                    sequences.append(seq)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start = time.monotonic()
        try:
            result = broadcaster.run()
        finally:
            done.set()
            watcher.join(5)
            time.sleep(0.5)
            client.finish()
        wall = time.monotonic() - start

    assert result.reason == "max-duration" and result.seconds == pytest.approx(9.0, abs=0.05)
    assert wall >= 8.5  # paced to real time, not as fast as it can encode
    frames = client.frames
    assert len(frames) >= 5 * FPS, (len(frames), frames[:1], {f[0] for f in frames})
    check_continuous(frames)
    assert segment_starts(frames) >= 2  # segments changed on air, twice at least
    # Frame indices inside a segment go up one by one (no frame lost or doubled).
    steps = [b[3] - a[3] for a, b in itertools.pairwise(frames) if b[3] >= a[3]]
    assert sum(s == 1 for s in steps) >= 0.95 * len(steps)
    # After the third segment the first repeats (nothing new was added).
    assert result.titles[:4] == ["shot 0", "shot 1", "shot 2", "shot 0"]

    # HLS: the playlist advanced while on air, and the segments it lists decode.
    assert sequences and sequences[-1] > sequences[0], sequences
    listed = [line for line in (hls / "index.m3u8").read_text().splitlines()
              if line.endswith(".ts")]
    assert 1 <= len(listed) <= 4
    assert len(list(hls.glob("*.ts"))) <= 5  # old segments are deleted
    import av

    for name in listed:
        with av.open(str(hls / name)) as ts:
            decoded = [decode_index(f.to_ndarray(format="rgb24")) for f in ts.decode(video=0)]
        assert decoded and all(0 <= i < max(LENGTHS) for i in decoded)
    now = json.loads((hls / "now.json").read_text())
    assert now["now"]["title"].startswith("shot ") and len(now["recent"]) >= 4
    assert [r["stream_time"] for r in now["recent"][:3]] == pytest.approx([0.0, 2.0, 4.4])


@needs_nginx
@pytest.mark.parametrize("with_hls", [False, True], ids=["rtmp", "rtmp+hls"])
def test_rtmp_server_restarted_mid_stream(tmp_path: Path, segments: list[Path], with_hls: bool):
    """RTMP alone: the channel waits for the server and the segment on air plays again from
    its start. With HLS too: HLS goes on without a pause and RTMP rejoins live."""
    playlist = make_playlist(tmp_path / "state", segments)
    with NginxRtmp() as server:
        url = server.url("channel")
        client = Client(url, seconds=25, delay=0.7)
        client.start()
        broadcaster = Broadcaster(playlist, rtmp=url, hls=tmp_path / "hls" if with_hls else None,
                                  channel=CHANNEL, max_seconds=8.0, backoff=0.25, backoff_max=2.0)
        holder: dict = {}
        thread = threading.Thread(target=lambda: holder.update(result=broadcaster.run()), daemon=True)
        started = time.monotonic()
        thread.start()
        try:
            time.sleep(3.5)  # in the middle of the second segment (2.0 s to 4.4 s)
            on_air = playlist.status().on_air
            server.stop()
            cut, cut_wall = time.monotonic(), time.time()
            time.sleep(1.5)
            server.start()
            thread.join(20)
            assert not thread.is_alive()
            wall = time.monotonic() - started
        finally:
            broadcaster.stop()
            thread.join(5)
            time.sleep(0.3)
            client.finish()
    result = holder["result"]
    assert result.reason == "max-duration"
    assert result.reconnects >= 1
    frames = client.frames
    before = [f for f in frames if f[1] < cut]
    after = [f for f in frames if f[1] > cut + 1.5]
    assert before and len(after) >= FPS, (len(before), len(after))  # the client sees it again
    assert len({f[0] for f in frames}) >= 2
    check_continuous(frames)
    # Nothing lost from the queue: the segment on air at the cut went on air again after the
    # server came back and played to its end; every queued segment reached the end.
    assert on_air is not None
    history = json.loads((tmp_path / "state" / "playlist.json").read_text())["history"]
    assert [h["title"] for h in history][:3] == ["shot 0", "shot 1", "shot 2"]
    replayed = next(h for h in history if h["segment"] == on_air["id"])
    if with_hls:
        assert replayed["started"] < cut_wall  # HLS did not stop: the segment went on
        assert wall < 9.2  # 8 s on air: the channel did not wait for RTMP
    else:
        assert replayed["started"] > cut_wall
        assert wall > 9.2  # 8 s on air and the 1.5 s outage waited out
        assert replayed["ended"] - replayed["started"] >= on_air["duration"] - 0.3
    assert playlist.status().queue == []


@pytest.mark.parametrize("where", ["state", "now"])
def test_full_disk_stops_cleanly(tmp_path: Path, segments: list[Path],
                                 monkeypatch: pytest.MonkeyPatch, where: str):
    import kinema.broadcast.live as live
    import kinema.broadcast.playlist as playlist_module

    playlist = make_playlist(tmp_path / "state", segments)
    state_file = tmp_path / "state" / "playlist.json"
    module = playlist_module if where == "state" else live
    real = module.atomic_write_bytes
    calls = [0]

    def full_disk(target: Path, data: bytes, **kwargs) -> None:
        calls[0] += 1
        if calls[0] > 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
        real(target, data, **kwargs)

    monkeypatch.setattr(module, "atomic_write_bytes", full_disk)
    broadcaster = Broadcaster(playlist, hls=tmp_path / "hls", channel=CHANNEL, realtime=False,
                              max_seconds=30.0)
    start = time.monotonic()
    result = broadcaster.run()
    assert time.monotonic() - start < 20
    assert result.reason == "disk-full" and "No space" in (result.error or "")
    assert 0 < result.seconds < 30
    # The state on disk is whole and readable, and a restart continues from it.
    monkeypatch.setattr(module, "atomic_write_bytes", real)
    saved = json.loads(state_file.read_text())
    assert len(saved["segments"]) == 3
    again = Playlist(tmp_path / "state")
    assert again.next() is not None
    assert (tmp_path / "hls" / "index.m3u8").exists()


def test_restart_continues_the_channel(tmp_path: Path, segments: list[Path]):
    """A second run on the same state folder replays the segment left on air and continues
    the stream's timestamps and the HLS media sequence."""
    import av

    make_playlist(tmp_path / "state", segments)
    hls = tmp_path / "hls"
    first = Broadcaster(Playlist(tmp_path / "state"), hls=hls, channel=CHANNEL, realtime=False,
                        hls_time=1.0, hls_list_size=3, max_seconds=3.0).run()
    assert first.titles == ["shot 0"]  # shot 1 was on air at 3 s
    on_air = Playlist(tmp_path / "state").status().on_air
    assert on_air["title"] == "shot 1"
    sequence = media_sequence(hls / "index.m3u8")
    second = Broadcaster(Playlist(tmp_path / "state"), hls=hls, channel=CHANNEL, realtime=False,
                         hls_time=1.0, hls_list_size=3, max_seconds=3.0).run()
    assert second.titles[0] == "shot 1"  # played again from its start
    now = json.loads((hls / "now.json").read_text())
    assert now["recent"][0]["stream_time"] == pytest.approx(3.0)  # continues, not from 0
    assert media_sequence(hls / "index.m3u8") > sequence
    last = [line for line in (hls / "index.m3u8").read_text().splitlines() if line.endswith(".ts")][-1]
    with av.open(str(hls / last)) as ts:
        times = [f.time for f in ts.decode(video=0)]
    assert min(times) >= 4.5  # after the first run's 3 s (from 0 it would be before 3 s)


def test_mixed_segments_join_one_format(tmp_path: Path, segments: list[Path]):
    """Another size and rate, no sound, an unreadable file: one channel format comes out,
    sound as long as the pictures, and the broken segment is dropped while the channel goes on."""
    import av
    import numpy as np

    wide = write_clip(tmp_path / "wide.mp4", 45, (480, 240), 30)  # 1.5 s, no sound
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a movie" * 100)
    playlist = Playlist(tmp_path / "state")
    playlist.add(wide, title="wide")
    playlist.add(broken, duration=2.0, title="broken")
    playlist.add(segments[0], title="shot 0")
    hls = tmp_path / "hls"
    result = Broadcaster(playlist, hls=hls, channel=CHANNEL, realtime=False, hls_list_size=20,
                         max_seconds=3.5).run()
    assert result.titles == ["wide", "shot 0"]
    assert [s.title for s in playlist.segments.values()] == ["wide", "shot 0"]  # broken dropped
    # (The playlist of a live channel has no end tag, so a player of index.m3u8 would wait for
    # more: the segments are read one by one.)
    frames, chunks = [], []
    for name in (line for line in (hls / "index.m3u8").read_text().splitlines()
                 if line.endswith(".ts")):
        with av.open(str(hls / name)) as container:
            frames += list(container.decode(video=0))
        with av.open(str(hls / name)) as container:
            chunks += [f.to_ndarray() for f in container.decode(audio=0)]
            layout = container.streams.audio[0].layout.name
            rate = container.streams.audio[0].rate
    sound = np.concatenate(chunks, axis=1)
    assert {(f.width, f.height) for f in frames} == {(320, 240)}
    assert len(frames) == round(3.5 * FPS)
    assert (rate, layout) == (48000, "stereo")
    assert abs(sound.shape[1] - 3.5 * 48000) <= 2048  # sound as long as the pictures
    # The wide segment is letterboxed: black bars above and below, the pattern in between.
    first = frames[0].to_ndarray(format="rgb24")
    assert first[:30].max() < 40 and first[-30:].max() < 40 and first[100:140].max() > 100
    # 1.5 s of silence, then shot 0's tone.
    assert np.abs(sound[:, 4800:67000]).max() < 0.01
    assert np.abs(sound[:, 80000:150000]).max() > 0.2
    # 30 fps pictures at 25 fps: each channel frame shows the source frame of its time.
    index = [decode_index(f.to_ndarray(format="rgb24")[40:200]) for f in frames[:10]]
    assert index[0] == 0 and all(0 < b - a <= 2 for a, b in itertools.pairwise(index))


def test_broadcaster_needs_an_output(tmp_path: Path):
    with pytest.raises(ValueError):
        Broadcaster(Playlist(tmp_path / "state"))


# -- nginx ------------------------------------------------------------------------------------


@needs_nginx
def test_nginx_serves_pages_and_leaves_no_process(tmp_path: Path):
    page, hls = tmp_path / "page", tmp_path / "hls"
    page.mkdir()
    hls.mkdir()
    (page / "index.html").write_text("<h1>kinema tv</h1>")
    (hls / "index.m3u8").write_text("#EXTM3U\n")
    server = NginxRtmp(http_port=None, http_root=page, hls_dir=hls)
    from kinema.broadcast.nginx import free_port

    server.http_port = free_port()
    pid = None
    with pytest.raises(RuntimeError, match="boom"):
        with server:
            pid = server.process.pid
            assert server.url("x").startswith("rtmp://127.0.0.1:")
            with urllib.request.urlopen(server.http_url("/"), timeout=5) as r:
                assert b"kinema tv" in r.read()
            with urllib.request.urlopen(server.http_url("/hls/index.m3u8"), timeout=5) as r:
                assert r.read().startswith(b"#EXTM3U")
            raise RuntimeError("boom")
    assert pid is not None and server.process is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


@needs_nginx
def test_nginx_dies_with_a_killed_parent(tmp_path: Path):
    """A kinema killed outright (no ``with`` exit) leaves no nginx behind."""
    import contextlib
    import ctypes
    import signal
    import subprocess
    import sys

    script = ("import sys, time\n"
              "from kinema.broadcast import NginxRtmp\n"
              "server = NginxRtmp().start()\n"
              "print(server.process.pid, flush=True)\n"
              "time.sleep(30)\n")
    # Orphans come to this process (a subreaper) rather than PID 1, so the test reaps the
    # nginx it checks and leaves no zombie behind.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pid = None
    try:
        pid = int(parent.stdout.readline())
        os.kill(pid, 0)  # running
        parent.send_signal(signal.SIGKILL)
        parent.wait(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if not alive(pid):
                break
            time.sleep(0.05)
        else:
            pytest.fail("nginx outlived its killed parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(5)
        parent.stdout.close()
        if pid is not None:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        libc.prctl(36, 0)
