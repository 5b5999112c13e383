"""kinema tv's player page in headless Chromium: the HLS stream plays (its time goes on) and the
title of the segment on air shows, from ``now.json`` beside the playlist."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kinema.broadcast.web import PAGE_DIR, PAGE_FILES, PageServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium (Debian package chromium) "
                                                             "is not installed")


def write_hls(folder: Path, seconds: int = 12, fps: int = 25, size: tuple[int, int] = (320, 180)) -> Path:
    """A VOD HLS stream of a moving test pattern with a tone, in 1-second segments (PyAV's hls muxer)."""
    import av

    from kinema.media.synth import pattern_frame

    folder.mkdir(parents=True, exist_ok=True)
    out = av.open(str(folder / "index.m3u8"), "w", format="hls",
                  options={"hls_time": "1", "hls_list_size": "0", "hls_playlist_type": "vod",
                           "hls_segment_filename": str(folder / "seg%03d.ts")})
    try:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = *size, "yuv420p"
        video.options = {"preset": "ultrafast", "g": str(fps), "keyint_min": str(fps), "sc_threshold": "0"}
        audio = out.add_stream("aac", rate=48000, layout="stereo")
        sent = 0
        for i in range(fps * seconds):
            picture = av.VideoFrame.from_ndarray(pattern_frame(i, *size), format="rgb24")
            frame = picture.reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
            while sent < (i + 1) * 48000 // fps:
                tone = (0.1 * np.sin(2 * np.pi * 440 * (sent + np.arange(1024)) / 48000)).astype(np.float32)
                chunk = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
                chunk.sample_rate, chunk.pts, chunk.time_base = 48000, sent, Fraction(1, 48000)
                out.mux(audio.encode(chunk))
                sent += 1024
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    finally:
        out.close()
    return folder / "index.m3u8"


class LivePlaylist:
    """Publishes ``live.m3u8`` beside a VOD playlist as a live stream: a window of ``window``
    segments that slides on by one every segment's length (rewritten atomically), from a
    background thread, until the segments run out or :meth:`close`."""

    def __init__(self, vod: Path, *, window: int = 6, start: int = 4) -> None:
        lines = vod.read_text().splitlines()
        self.segments = [(float(lines[k].split(":")[1].rstrip(",")), lines[k + 1])
                         for k in range(len(lines)) if lines[k].startswith("#EXTINF")]
        self.path, self.window = vod.with_name("live.m3u8"), window
        self.stop = threading.Event()
        self._publish(start)
        self.thread = threading.Thread(target=self._run, args=(start,), daemon=True)
        self.thread.start()

    def _publish(self, end: int) -> None:
        first = max(0, end - self.window)
        shown = self.segments[first:end]
        text = ["#EXTM3U", "#EXT-X-VERSION:3",
                f"#EXT-X-TARGETDURATION:{max(round(d) for d, _ in self.segments)}",
                f"#EXT-X-MEDIA-SEQUENCE:{first}"]
        for duration, name in shown:
            text += [f"#EXTINF:{duration:.6f},", name]
        temp = self.path.with_name(".live.m3u8.tmp")
        temp.write_text("\n".join(text) + "\n")
        os.replace(temp, self.path)

    def _run(self, end: int) -> None:
        while end < len(self.segments) and not self.stop.wait(self.segments[end - 1][0]):
            end += 1
            self._publish(end)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


class Chromium:
    """Headless Chromium driven over its DevTools protocol on a pipe (``--remote-debugging-pipe``:
    JSON messages ending in NUL on file descriptors 3 and 4), one page attached."""

    def __init__(self, profile: Path, *, size: tuple[int, int] = (1280, 900)) -> None:
        to_chrome, self._write = os.pipe()
        self._read, from_chrome = os.pipe()
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--mute-audio",
                "--autoplay-policy=no-user-gesture-required", "--remote-debugging-pipe", "--hide-scrollbars",
                f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}", "about:blank"]
        # fds 3 and 4 in the browser, whatever numbers the pipes have here
        script = f'exec 10<&{to_chrome} 11>&{from_chrome}; exec 3<&10 4>&11 10<&- 11>&-; exec "$0" "$@"'
        self.proc = subprocess.Popen(["bash", "-c", script, str(CHROMIUM), *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     pass_fds=(to_chrome, from_chrome), start_new_session=True)
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer, self._id, self.session = b"", 0, None
        try:
            pages = [t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page"]
            self.session = self.send("Target.attachToTarget",
                                     {"targetId": pages[0]["targetId"], "flatten": True})["sessionId"]
        except BaseException:
            self.close()
            raise

    def send(self, method: str, params: dict[str, Any] | None = None, *,
             timeout: float = 20) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
            if select.select([self._read], [], [], 0.25)[0]:
                chunk = os.read(self._read, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed its DevTools pipe")
                self._buffer += chunk
        raise TimeoutError(f"chromium did not answer {method} in {timeout} s")

    def evaluate(self, expression: str) -> Any:
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return reply["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"]))
        return path

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)  # the browser and every helper it started
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        for fd in (self._write, self._read):
            with contextlib.suppress(OSError):
                os.close(fd)


STATE = ("[document.getElementById('video').currentTime, document.getElementById('title').textContent, "
         "document.getElementById('prompt').textContent, document.body.dataset.status || '']")


def test_the_page_files_are_there():
    for name in PAGE_FILES:
        assert (PAGE_DIR / name).is_file(), name
    assert "Apache License" in (PAGE_DIR / "vendor" / "LICENSE").read_text()
    readme = (PAGE_DIR / "vendor" / "README.md").read_text()
    import hashlib

    assert hashlib.sha256((PAGE_DIR / "vendor" / "hls.min.js").read_bytes()).hexdigest() in readme
    html = (PAGE_DIR / "index.html").read_text()
    assert 'src="vendor/hls.min.js"' in html and 'src="player.js"' in html


def test_the_server_serves_the_page_and_the_stream(tmp_path: Path):
    from urllib.request import urlopen

    (tmp_path / "index.m3u8").write_text("#EXTM3U\n")
    (tmp_path / "now.json").write_text('{"title": "t"}')
    with PageServer(tmp_path) as server:
        assert server.url.startswith("http://127.0.0.1:")
        with urlopen(server.url, timeout=5) as page:
            assert b"kinema tv" in page.read()
        with urlopen(server.url + "index.m3u8", timeout=5) as playlist:
            assert playlist.headers["Content-Type"] == "application/vnd.apple.mpegurl"
            assert playlist.headers["Cache-Control"] == "no-store"
        with urlopen(server.url + "now.json?t=1", timeout=5) as now:
            assert json.load(now) == {"title": "t"}
    assert not server.thread.is_alive()


def watch(browser: Chromium, url: str, *, seconds: float = 2, timeout: float = 30) -> list[Any]:
    """Open ``url`` and wait until its video has played ``seconds``; the page's state then
    (the video's time, title, prompt, status)."""
    browser.send("Page.navigate", {"url": url})
    times, state = [], None
    end = time.monotonic() + timeout
    while time.monotonic() < end and (len(times) < 2 or times[-1] - times[0] < seconds):
        time.sleep(0.5)
        state = browser.evaluate(STATE)
        if state and state[0] > 0:
            times.append(state[0])
    assert len(times) >= 2 and times[-1] - times[0] >= seconds, (times, state)  # it plays on
    return state


@pytest.fixture
def browser(tmp_path: Path):
    chromium = Chromium(tmp_path / "profile")
    try:
        yield chromium
    finally:
        chromium.close()
    assert chromium.proc.returncode is not None
    assert not living_in_group(chromium.proc.pid)  # no browser process left behind


@needs_chromium
def test_chromium_plays_the_stream_and_shows_the_title(tmp_path: Path, browser: Chromium):
    site = tmp_path / "site"
    hls = site / "hls"  # the layout of kinema's nginx: the page at /, the stream under /hls/
    write_hls(hls)
    (hls / "now.json").write_text(json.dumps({  # what the broadcaster writes
        "now": {"id": "s1", "title": "A dog on a path", "prompt": "a woman walks her dog at dawn",
                "duration": 12.0, "stream_time": 0.0, "wall_time": time.time()},
        "next": ["Pouring coffee"]}))
    with PageServer(site) as server:
        state = watch(browser, server.url + "index.html?poll=0.5")
        assert state[1:] == ["A dog on a path", "a woman walks her dog at dawn", "playing"]
        assert browser.evaluate("document.getElementById('next').textContent") == "Pouring coffee"
        # a new segment on air, in the short form: the page follows
        (hls / "now.json").write_text(json.dumps({"title": "Pouring coffee", "prompt": "a blue cup",
                                                  "started": time.time()}))
        end = time.monotonic() + 10
        while time.monotonic() < end and browser.evaluate(STATE)[1] != "Pouring coffee":
            time.sleep(0.25)
        assert browser.evaluate(STATE)[1:3] == ["Pouring coffee", "a blue cup"]
        assert browser.evaluate("document.getElementById('next-box').hidden") is True


@needs_chromium
def test_a_live_stream_shows_what_is_on_air_where_the_viewer_is(tmp_path: Path, browser: Chromium):
    hls = tmp_path / "hls"
    write_hls(hls, seconds=30)
    now = time.time()
    # by stream time: the viewer joins three segments behind the live edge (4 s), at 1 s or later
    entries = [{"title": "The first", "stream_time": 0.0, "wall_time": now - 30},
               {"title": "A dog on a path", "stream_time": 0.5, "wall_time": now - 27},
               {"title": "Just started", "stream_time": 1000.0, "wall_time": now + 1000}]
    (hls / "now.json").write_text(json.dumps({"now": entries[-1], "recent": entries, "next": []}))
    live = LivePlaylist(hls / "index.m3u8")
    try:
        with PageServer(hls) as server:
            state = watch(browser, server.url + "index.html?stream=live.m3u8&poll=0.5")
            assert state[1] == "A dog on a path" and state[3] == "playing"
            # without stream times, by the server's clock less the segment length and latency
            entries = [{"title": "Old news", "wall_time": now - 1000},
                       {"title": "By the clock", "wall_time": now - 100},
                       {"title": "Encoding now", "wall_time": time.time() + 1}]
            (hls / "now.json").write_text(json.dumps({"now": entries[-1], "recent": entries, "next": []}))
            end = time.monotonic() + 10
            while time.monotonic() < end and browser.evaluate(STATE)[1] != "By the clock":
                time.sleep(0.25)
            assert browser.evaluate(STATE)[1] == "By the clock"
    finally:
        live.close()


def living_in_group(group: int) -> list[int]:
    """Processes of process group ``group`` that are still running (not zombies)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group and fields[0] != "Z":
                found.append(int(stat.parent.name))
    return found
