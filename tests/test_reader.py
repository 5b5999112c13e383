"""Frame-exact random and sequential access, checked against indices encoded in the pixels."""

from __future__ import annotations

import ctypes
import os
import random
import resource
import struct
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from conftest import media
from kinema.media import open_video
from kinema.media.convert import to_rgb
from kinema.media.synth import decode_index, pattern_frame, write_clip


def assert_exact(path: Path, n: int, samples: int = 40, **open_kwargs: object) -> None:
    """Sequential and random-order reads both return frame i for index i."""
    with open_video(path, **open_kwargs) as r:
        assert len(r) == n
        assert [decode_index(f) for f in r.frames()] == list(range(n))
        order = random.Random(7).sample(range(n), min(samples, n))
        got = [decode_index(r[i]) for i in order]
        assert got == order


def test_h264_bframes_long_gop(h264_bframes: Path):
    assert_exact(h264_bframes, 150)
    with open_video(h264_bframes) as r:
        assert r.fps == Fraction(30000, 1001)
        assert r.keyframes == [0, 60, 120]
        assert r.duration == Fraction(150 * 1001, 30000)
        assert r.timestamp(90) == Fraction(90 * 1001, 30000)
        assert r.index_at(Fraction(90 * 1001, 30000)) == 90
        assert r.index_at(Fraction(90 * 1001, 30000) - Fraction(1, 10**6)) == 89


def test_open_gop(make_clip):
    path = make_clip("opengop.mp4", n=90, gop=30, bframes=3, open_gop=True)
    assert_exact(path, 90)


def test_backward_stepping_across_gops(h264_bframes: Path):
    with open_video(h264_bframes) as r:
        assert [decode_index(r[i]) for i in range(149, 100, -1)] == list(range(149, 100, -1))


def test_vfr_mkv_timestamps_are_exact(vfr_mkv: Path, vfr_times: list[Fraction]):
    assert_exact(vfr_mkv, len(vfr_times))
    with open_video(vfr_mkv) as r:
        assert r.is_vfr
        assert [r.timestamp(i) for i in range(len(r))] == vfr_times
        for i in (0, 13, 40, len(r) - 1):
            assert r.index_at(vfr_times[i]) == i
            if i:
                assert r.index_at(vfr_times[i] - Fraction(1, 1000)) == i - 1


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_is_applied(make_clip, rotation: int):
    path = make_clip(f"rot{rotation}.mp4", n=24, size=(320, 240), rotation=rotation)
    with open_video(path) as r:
        assert r.size == (320, 240)
        frame = r[5]
        assert frame.shape == (240, 320, 3)
        assert decode_index(frame) == 5
        # The orientation marker (red) sits in the top-right corner when upright.
        assert frame[5, 315, 0] > 150 and frame[5, 315, 1] < 100
    assert_exact(path, 24, samples=8)


def _set_tkhd_matrix(path: Path, matrix: tuple[int, ...]) -> None:
    """Patch the video track's tkhd matrix in place, as phones write portrait video."""
    data = bytearray(path.read_bytes())
    pos = data.find(b"tkhd")
    version = data[pos + 4]
    # box: size(4) 'tkhd' ver/flags(4) times ids(...) reserved/layer/alt/volume/reserved, matrix(36)
    offset = pos + 4 + 4 + (32 if version == 1 else 20) + 8 + 2 + 2 + 2 + 2
    data[offset:offset + 36] = struct.pack(">9i", *matrix)
    path.write_bytes(bytes(data))


def test_phone_portrait_matrix_rotates_clockwise(tmp_path: Path):
    # Landscape-stored frames with the matrix phones use for portrait: shown turned 90 degrees
    # clockwise. Ground truth comes from the stored pattern, not from FFmpeg's own tagging.
    path = write_clip(tmp_path / "portrait.mp4", n=6, size=(160, 96))
    _set_tkhd_matrix(path, (0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000))
    with open_video(path) as r:
        assert r.size == (96, 160)
        expected = np.rot90(pattern_frame(3, 160, 96), -1)
        got = r[3].astype(int)
        assert np.abs(got - expected).mean() < 12


def test_odd_size_853x479(make_clip):
    path = make_clip("odd.mp4", n=30, size=(853, 479), pix_fmt="yuv444p")
    assert_exact(path, 30, samples=10)
    with open_video(path) as r:
        assert r.size == (853, 479) and r[0].shape == (479, 853, 3)


def test_10bit_444(make_clip):
    path = make_clip("p10.mkv", n=30, pix_fmt="yuv444p10le")
    with open_video(path) as r:
        assert r.pix_fmt == "yuv444p10le" and r[0].dtype == np.uint8
    assert_exact(path, 30, samples=10)


def test_first_pts_not_zero(make_clip):
    path = make_clip("offset.mkv", n=40, start=Fraction(22, 5))
    assert_exact(path, 40, samples=10)
    with open_video(path) as r:
        assert r.start_time == Fraction(22, 5)
        assert r.timestamp(0) == 0 and r.timestamp(10) == Fraction(10, 25)


def test_sequence_protocol(h264_bframes: Path):
    with open_video(h264_bframes) as r:
        assert decode_index(r[-1]) == 149 and decode_index(r[-150]) == 0
        block = r[10:20:3]
        assert block.shape == (4, 240, 320, 3)
        assert [decode_index(f) for f in block] == [10, 13, 16, 19]
        assert [decode_index(f) for f in r[5:1:-2]] == [5, 3]
        assert r[200:].shape == (0, 240, 320, 3)
        assert [decode_index(f) for f in r.frames(140, step=4)] == [140, 144, 148]
        with pytest.raises(IndexError, match="150 frames"):
            r[150]
        with pytest.raises(IndexError):
            r[-151]
        with pytest.raises(TypeError):
            r[1.5]  # type: ignore[index]
        with pytest.raises(IndexError):
            r.index_at(r.duration)


def test_cache_is_bounded_in_bytes(h264_bframes: Path):
    frame_bytes = 320 * 240 * 3 // 2
    with open_video(h264_bframes, cache_bytes=10 * frame_bytes, prefetch=False) as r:
        for i in range(0, 150, 7):
            r[i]
        assert r._cache.nbytes <= 10 * frame_bytes
        assert len(r._cache) <= 10


def test_after_a_jump_neighbours_are_served_from_cache(h264_bframes: Path):
    with open_video(h264_bframes) as r:
        r[100]
        deadline = time.monotonic() + 10
        wanted = set(range(95, 111))
        while not wanted <= {i for i in wanted if i in r._cache} and time.monotonic() < deadline:
            time.sleep(0.02)
        assert all(i in r._cache for i in wanted)
        misses = r.cache_misses
        assert [decode_index(r[i]) for i in (101, 99, 105, 97)] == [101, 99, 105, 97]
        assert r.cache_misses == misses


def test_prefetch_runs_backward_when_playing_backward(h264_bframes: Path):
    with open_video(h264_bframes) as r:
        for i in (70, 68, 66, 64, 62):  # stepping back towards the GOP start at 60
            r[i]
        deadline = time.monotonic() + 10
        while 40 not in r._cache and time.monotonic() < deadline:
            time.sleep(0.02)
        assert 40 in r._cache  # the previous GOP was decoded ahead of the playhead


def test_thumbnails(h264_bframes: Path):
    with open_video(h264_bframes) as r:
        strip = r.thumbnails(5, height=60)
        assert strip.shape == (5, 60, 80, 3)
        assert r.thumbnail_indices(5) == [0, 0, 60, 60, 120]
        exact = r.thumbnails(3, height=120, exact=True)
        assert [decode_index(t) for t in exact] == [0, 74, 149]


@pytest.mark.parametrize("name", ["dog.mp4", "juggle.mp4", "bedroom.mp4", "coffee.mp4"])
def test_real_clips_match_a_plain_sequential_decode(name: str):
    path = media(name)
    container = av.open(str(path))
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    reference = [to_rgb(f, f.rotation) for f in container.decode(stream)]
    container.close()
    with open_video(path) as r:
        assert len(r) == len(reference)
        for i in random.Random(3).sample(range(len(r)), 12) + [len(r) - 1, 0]:
            assert np.array_equal(r[i], reference[i]), f"{name} frame {i}"
        for i, f in enumerate(r.frames(0, 40)):
            assert np.array_equal(f, reference[i])


def test_a_reader_nobody_closes_is_freed_with_its_thread(h264_bframes: Path):
    import gc
    import threading

    def prefetchers() -> int:
        return sum(t.name.startswith("kinema-prefetch") for t in threading.enumerate())

    before = prefetchers()
    r = open_video(h264_bframes)
    r[50]
    assert prefetchers() == before + 1
    del r
    gc.collect()
    deadline = time.monotonic() + 10
    while prefetchers() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert prefetchers() == before


def test_long_indexes_are_cached_until_the_file_changes(tmp_path: Path, monkeypatch):
    from kinema.media import index as index_module

    monkeypatch.setattr(index_module, "CACHE_MIN_SECONDS", 0.0)
    clip = write_clip(tmp_path / "long.mkv", n=30, gop=10)
    with open_video(clip) as r:
        expected = [r.timestamp(i) for i in range(len(r))]
    cached = list(Path(os.environ["KINEMA_CACHE_DIR"]).glob("index/long-*.index.npz"))
    assert len(cached) == 1

    def no_demux(*args: object) -> None:
        raise AssertionError("the cached index should have been used")

    monkeypatch.setattr(index_module, "build_index", no_demux)
    with open_video(clip) as r:
        assert [r.timestamp(i) for i in range(len(r))] == expected
        assert decode_index(r[17]) == 17
    monkeypatch.undo()
    monkeypatch.setattr(index_module, "CACHE_MIN_SECONDS", 0.0)
    write_clip(clip, n=12, gop=10)  # re-exported under the same name
    with open_video(clip) as r:
        assert len(r) == 12 and decode_index(r[11]) == 11


def test_readers_share_one_byte_budget(h264_bframes: Path, vfr_mkv: Path, monkeypatch):
    from kinema.media import cache

    frame_bytes = 320 * 240 * 3 // 2
    monkeypatch.setattr(cache, "_shared", cache.ByteLRU(12 * frame_bytes))
    a = open_video(h264_bframes, prefetch=False)
    b = open_video(vfr_mkv, prefetch=False)
    for i in range(0, 60, 5):
        a[i]
        b[i]
    shared = cache.shared_cache()
    assert shared.nbytes <= 12 * frame_bytes
    assert a._cache.nbytes + b._cache.nbytes == shared.nbytes
    assert len(a._cache) > 0 and len(b._cache) > 0
    a.close()
    assert len(a._cache) == 0 and len(b._cache) > 0 and shared.nbytes == b._cache.nbytes
    assert decode_index(b[55]) == 55
    b.close()


def test_analysis_frames_are_small_luma_first_and_close_to_the_frames(h264_bframes: Path):
    with open_video(h264_bframes) as r:
        small = list(r.analysis_frames((160, 120)))
        assert len(small) == 150 and all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for f in small)
        full = list(r.analysis_frames((320, 240), 100, 110))
        assert [decode_index(np.dstack([f[..., 0]] * 3)) for f in full] == list(range(100, 110))
        for i, f in zip(range(0, 150, 15), small[::15], strict=True):
            exact = cv2.cvtColor(r.frames(i, i + 1, size=(160, 120)).__next__(), cv2.COLOR_RGB2YCrCb)
            assert np.abs(f.astype(int) - exact[..., [0, 2, 1]]).mean() < 4, i  # luma, Cb, Cr
        black = np.abs(small[0][:4, :4, 0].astype(int))  # a black cell: full range, not 16
        assert black.max() < 8


def test_analysis_frames_follow_rotation(make_clip):
    path = make_clip("rot90.mp4", n=24, size=(320, 240), rotation=90)
    with open_video(path) as r:
        frames = list(r.analysis_frames((320, 240)))
    assert len(frames) == 24 and frames[0].shape == (240, 320, 3)
    assert decode_index(np.dstack([frames[5][..., 0]] * 3)) == 5


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_sequential_frames_reuse_freed_memory(make_clip, monkeypatch):
    # glibc at its starting mmap threshold maps every frame-sized buffer afresh and unmaps it
    # when freed: every frame of a sequential read would page-fault all of its memory anew.
    from kinema.media import reader as reader_module

    monkeypatch.setattr(reader_module, "_heap_threshold", 0, raising=False)
    ctypes.CDLL(None).mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD, its starting value
    path = make_clip("vga.mp4", n=60, size=(640, 480))
    faults: dict[int, int] = {}
    with open_video(path) as r:
        for i, frame in enumerate(r.frames()):
            last = frame  # the previous frame lives on while the next is made, as in most callers
            if i in (20, 59):  # past the decoder's start-up, whose buffers are made once
                faults[i] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    assert decode_index(last) == 59
    pages_per_frame = 640 * 480 * 3 // 4096
    assert faults[59] - faults[20] < 39 * pages_per_frame // 10, faults


def test_a_jump_skips_frames_nothing_refers_to(h264_bframes: Path):
    # Keyframes at 0, 60, 120 and three B-frames between references: a jump to 59 needs the
    # references before it and the last few frames, not every B-frame of the GOP.
    with open_video(h264_bframes, prefetch=False) as r:
        r.clear_cache()
        assert decode_index(r[59]) == 59
        decoded = len(r._cache)
        assert decoded < 45, decoded
        assert all(i in r._cache for i in range(52, 60))
        assert [decode_index(r[i]) for i in (30, 31, 33)] == [30, 31, 33]  # exact when asked
