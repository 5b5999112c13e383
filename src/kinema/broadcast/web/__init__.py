"""The kinema tv player page: ``index.html`` and ``player.js`` play the channel's HLS stream
with the vendored hls.js (``vendor/``, see its README) and show the title (and prompt) of the
segment on air by polling ``now.json`` beside the playlist. The files are package data;
:data:`PAGE_DIR` is where they are. :class:`PageServer` serves the page and an HLS folder
together on 127.0.0.1 (the page's files first, everything else from the folder), uncached, in a
background thread: what tests and a small ``--serve`` need."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

PAGE_DIR = Path(__file__).resolve().parent
PAGE_FILES = ("index.html", "player.js", "player.css", "vendor/hls.min.js", "vendor/LICENSE")


class _Handler(SimpleHTTPRequestHandler):
    """Serves ``PAGE_FILES`` from the package and the rest from ``directory`` (the HLS folder)."""

    extensions_map: ClassVar[dict[str, str]] = {**SimpleHTTPRequestHandler.extensions_map,
                      ".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t",
                      ".js": "text/javascript", ".json": "application/json"}

    def translate_path(self, path: str) -> str:
        relative = path.split("?", 1)[0].split("#", 1)[0].lstrip("/") or "index.html"
        if relative in PAGE_FILES:
            return str(PAGE_DIR / relative)
        return super().translate_path(path)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class PageServer:
    """The player page and the HLS folder ``hls_dir`` over HTTP on ``host``:``port`` (0: any
    free port; :attr:`url` says which). A context manager; :meth:`close` stops it."""

    def __init__(self, hls_dir: str | Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = functools.partial(_Handler, directory=str(Path(hls_dir).resolve()))
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="kinema-tv-page", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> PageServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
