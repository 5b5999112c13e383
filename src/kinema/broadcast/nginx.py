"""A private nginx with the RTMP module: a live server for a channel, on 127.0.0.1 only.

``NginxRtmp`` writes a config into a temporary folder (never /etc), starts nginx in the
foreground as a child process (``daemon off``, ``master_process off``), waits until its port
answers, and stops it (and waits for it) when the ``with`` block ends, also on an exception,
so no server outlives the program; on Linux it also dies with the thread that started it, so not
even a killed kinema leaves one behind. With ``http_port`` it also serves a page folder at ``/``
and an HLS folder at ``/hls/`` over HTTP.

nginx and the module are the Debian packages ``nginx`` and ``libnginx-mod-rtmp``;
:func:`nginx_missing` says why a machine cannot run one (the tests skip with it).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from kinema.core.errors import KinemaError

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
HOST = "127.0.0.1"


class NginxError(KinemaError, RuntimeError):
    """nginx is missing, cannot start, or stopped answering."""


def find_nginx() -> str | None:
    """The nginx program (PATH, then /usr/sbin where Debian puts it), or None."""
    found = shutil.which("nginx")
    if found:
        return found
    debian = Path("/usr/sbin/nginx")
    return str(debian) if debian.exists() else None


def nginx_missing() -> str | None:
    """Why nginx with the RTMP module cannot run here, or None when it can."""
    if find_nginx() is None:
        return "nginx is not installed (Debian: apt-get install nginx libnginx-mod-rtmp)"
    if not RTMP_MODULE.exists():
        return f"the nginx RTMP module {RTMP_MODULE} is missing (Debian: apt-get install libnginx-mod-rtmp)"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = HOST, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the child before exec: on Linux, nginx gets SIGTERM when the thread that started it
    ends, so even a killed kinema (SIGKILL, no ``with`` exit) leaves no server behind."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def render_config(work: Path, rtmp_port: int, *, http_port: int | None = None,
                  http_root: Path | None = None, hls_dir: Path | None = None,
                  application: str = "live") -> str:
    """The nginx.conf text: the RTMP module loaded, one live application, optional HTTP."""
    logs = work / "logs"
    lines = [
        f"load_module {RTMP_MODULE};",
        "daemon off;",
        "master_process off;",
        "worker_processes 1;",
        f"pid {work / 'nginx.pid'};",
        f"error_log {logs / 'error.log'} warn;",
        "events { worker_connections 256; }",
        "rtmp {",
        "  server {",
        f"    listen {HOST}:{rtmp_port};",
        "    chunk_size 4096;",
        f"    application {application} {{",
        "      live on;",
        "      record off;",
        "      allow publish 127.0.0.1;",
        "      deny publish all;",
        "      allow play all;",
        "    }",
        "  }",
        "}",
    ]
    if http_port is not None:
        temp = work / "temp"
        lines += [
            "http {",
            f"  access_log {logs / 'access.log'};",
            f"  client_body_temp_path {temp / 'body'};",
            f"  proxy_temp_path {temp / 'proxy'};",
            f"  fastcgi_temp_path {temp / 'fastcgi'};",
            f"  uwsgi_temp_path {temp / 'uwsgi'};",
            f"  scgi_temp_path {temp / 'scgi'};",
            "  types {",
            "    text/html html; application/javascript js; text/css css;",
            "    application/json json; application/vnd.apple.mpegurl m3u8;",
            "    video/mp2t ts; image/png png; image/svg+xml svg; text/plain txt;",
            "  }",
            "  default_type application/octet-stream;",
            "  server {",
            f"    listen {HOST}:{http_port};",
            "    server_name localhost;",
        ]
        if http_root is not None:
            lines += [f"    root {Path(http_root).resolve()};", "    index index.html;"]
        if hls_dir is not None:
            lines += [
                "    location /hls/ {",
                f"      alias {Path(hls_dir).resolve()}/;",
                "      add_header Cache-Control no-cache;",
                "      add_header Access-Control-Allow-Origin *;",
                "    }",
            ]
        lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


class NginxRtmp:
    """nginx-rtmp on 127.0.0.1 as a child process, for the length of a ``with`` block.

    ``port`` is the RTMP port (a free one when None); ``http_port`` adds an HTTP server for
    ``http_root`` (the page) and ``hls_dir`` (at ``/hls/``). ``url(name)`` is where a
    broadcaster publishes and a player plays. ``stop()`` then ``start()`` restarts it on the
    same ports (the tests use this to cut a live stream).
    """

    def __init__(self, port: int | None = None, *, http_port: int | None = None,
                 http_root: str | os.PathLike[str] | None = None,
                 hls_dir: str | os.PathLike[str] | None = None, application: str = "live",
                 start_timeout: float = 10.0) -> None:
        self.port = port or free_port()
        self.http_port = http_port
        self.http_root = Path(http_root) if http_root is not None else None
        self.hls_dir = Path(hls_dir) if hls_dir is not None else None
        self.application = application
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._work: tempfile.TemporaryDirectory[str] | None = None

    def url(self, name: str = "channel") -> str:
        return f"rtmp://{HOST}:{self.port}/{self.application}/{name}"

    def http_url(self, path: str = "/") -> str:
        if self.http_port is None:
            raise NginxError("this nginx has no HTTP server", hint="pass http_port")
        return f"http://{HOST}:{self.http_port}{path}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> NginxRtmp:
        missing = nginx_missing()
        if missing:
            raise NginxError(missing)
        if self.running:
            return self
        if self._work is None:
            self._work = tempfile.TemporaryDirectory(prefix="kinema-nginx-")
        work = Path(self._work.name)
        for sub in ("logs", "temp"):
            (work / sub).mkdir(exist_ok=True)
        conf = work / "nginx.conf"
        conf.write_text(render_config(work, self.port, http_port=self.http_port,
                                      http_root=self.http_root, hls_dir=self.hls_dir,
                                      application=self.application))
        cmd = [find_nginx() or "nginx", "-p", str(work), "-c", str(conf), "-e",
               str(work / "logs" / "error.log")]
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, start_new_session=True,
                                        preexec_fn=_die_with_parent)
        deadline = time.monotonic() + self.start_timeout
        ports = [self.port] + ([self.http_port] if self.http_port is not None else [])
        while not all(port_open(p) for p in ports):
            if self.process.poll() is not None:
                err = self._read_errors()
                self.process = None
                raise NginxError(f"nginx stopped at start: {err or 'no message'}")
            if time.monotonic() > deadline:
                self.stop()
                raise NginxError(f"nginx did not answer on 127.0.0.1:{self.port} within "
                                 f"{self.start_timeout:.0f} s")
            time.sleep(0.05)
        return self

    def _read_errors(self) -> str:
        text = ""
        if self.process is not None and self.process.stderr is not None:
            try:
                text = self.process.stderr.read().decode(errors="replace")
            except (OSError, ValueError):
                text = ""
        if self._work is not None:
            log = Path(self._work.name) / "logs" / "error.log"
            with contextlib.suppress(OSError):
                text += log.read_text(errors="replace")
        return " ".join(text.split())[-400:]

    def stop(self, timeout: float = 5.0) -> None:
        """Stop nginx (SIGTERM, then SIGKILL) and wait for it: no orphan is left."""
        proc, self.process = self.process, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
        finally:
            if proc.stderr is not None:
                proc.stderr.close()

    def close(self) -> None:
        self.stop()
        if self._work is not None:
            self._work.cleanup()
            self._work = None

    def __enter__(self) -> NginxRtmp:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
