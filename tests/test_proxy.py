"""Proxies keep indices and timestamps exact, live where promised, and are rebuilt when stale."""

from __future__ import annotations

import os
import time
from pathlib import Path

from kinema.media import open_video
from kinema.media.proxy import find_proxy, proxy_path
from kinema.media.synth import decode_index, write_clip


def test_proxy_is_index_and_time_exact(vfr_mkv: Path):
    with open_video(vfr_mkv) as src, open_video(vfr_mkv, proxy=True) as prx:
        assert prx.decode_path != vfr_mkv and prx.decode_path.suffix == ".mov"
        assert len(prx) == len(src)
        assert [prx.timestamp(i) for i in range(len(prx))] == [src.timestamp(i) for i in range(len(src))]
        assert [decode_index(prx[i]) for i in range(len(prx))] == list(range(len(prx)))
        assert prx.keyframes == list(range(len(prx)))  # all-intra


def test_proxy_is_about_540p_and_keeps_rotation_applied(tmp_path: Path):
    big = write_clip(tmp_path / "big.mp4", n=8, size=(1280, 720), gop=4)
    rotated = write_clip(tmp_path / "rot.mp4", n=8, size=(640, 1138), rotation=90, gop=4)
    with open_video(big, proxy=True) as r:
        assert r.size == (960, 540)
        assert decode_index(r[5]) == 5
    with open_video(rotated, proxy=True) as r:
        assert r.size == (304, 540) and r.rotation == 0
        assert decode_index(r[3]) == 3


def test_stale_proxy_is_rebuilt(tmp_path: Path):
    clip = write_clip(tmp_path / "a.mp4", n=10)
    with open_video(clip, proxy=True) as r:
        first = r.decode_path
        assert len(r) == 10
    assert find_proxy(clip) == first
    write_clip(clip, n=14)  # the source changes under the same name
    os.utime(clip, (time.time() + 5, time.time() + 5))
    assert find_proxy(clip) is None
    with open_video(clip, proxy=True) as r:
        assert len(r) == 14 and decode_index(r[13]) == 13


def test_proxy_beside_the_source(tmp_path: Path):
    from kinema.media.proxy import ensure_proxy

    clip = write_clip(tmp_path / "b.mp4", n=6)
    path = ensure_proxy(clip, beside=True)
    assert path == proxy_path(clip, beside=True)
    assert path.parent == tmp_path / ".kinema-proxies"
    assert find_proxy(clip) == path


def test_beside_builds_one_beside_even_when_the_cache_has_one(tmp_path: Path):
    from kinema.app.media_jobs import make_proxy
    from kinema.media.proxy import ensure_proxy

    clip = write_clip(tmp_path / "c.mp4", n=6)
    cached = ensure_proxy(clip)
    assert cached == proxy_path(clip)
    list(make_proxy(clip, beside=True))
    beside = proxy_path(clip, beside=True)
    assert beside.is_file() and find_proxy(clip) == beside
    with open_video(clip, proxy=True) as r:
        assert r.decode_path == beside and decode_index(r[5]) == 5
    built = list(make_proxy(clip, beside=True))
    assert built == []  # fresh beside it now: nothing to do
