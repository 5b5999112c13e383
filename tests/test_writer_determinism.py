"""The same frames give the same H.264 bytes, whatever the heap holds.

x264's AVX-512 code reads heap memory it never wrote, and the stream changed with it: run in
parallel, with decoder and swscale threads churning the heap, ``kinema interpolate`` wrote
different files from one recipe. glibc's ``MALLOC_PERTURB_`` fills fresh allocations with a
chosen byte, so two processes that differ only in that byte show it without any load.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from kinema.media.codecs import X264_CPU_AVX512, x264_params

ENCODE = """
import sys
from fractions import Fraction
import numpy as np
from kinema.media.synth import pattern_frame
from kinema.media.writer import VideoWriter

rng = np.random.default_rng(0)
with VideoWriter(sys.argv[1], Fraction(48), (320, 240), codec="h264") as writer:
    for i in range(48):
        frame = pattern_frame(i, 320, 240).astype(np.int16)
        frame += rng.integers(-12, 13, frame.shape, dtype=np.int16)
        writer.write(np.clip(frame, 0, 255).astype(np.uint8).copy())
"""


def _glibc() -> bool:
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not _glibc(), reason="MALLOC_PERTURB_ is glibc's")
def test_h264_bytes_do_not_depend_on_uninitialised_memory(tmp_path: Path):
    outputs = []
    for perturb in ("7", "165"):
        out = tmp_path / f"perturb{perturb}.mp4"
        env = {**os.environ, "MALLOC_PERTURB_": perturb}
        subprocess.run([sys.executable, "-c", ENCODE, str(out)], env=env, check=True,
                       capture_output=True, timeout=120)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_h264_writer_and_frames_are_repeatable_in_process(tmp_path: Path):
    import numpy as np

    from kinema.media.synth import pattern_frame
    from kinema.media.writer import VideoWriter

    frames = [pattern_frame(i, 64, 48) for i in range(12)]
    data = []
    for k in range(2):
        with VideoWriter(tmp_path / f"w{k}.mp4", 24, (64, 48), codec="h264") as writer:
            for frame in frames:
                writer.write(np.array(frame, copy=True))
        data.append((tmp_path / f"w{k}.mp4").read_bytes())
    assert data[0] == data[1]


def test_x264_params_switch_off_avx512_only():
    from kinema.media import codecs

    flags = codecs._x264_cpu_flags()
    params = x264_params()
    if flags is None or not flags & X264_CPU_AVX512:
        assert params is None
    else:
        assert params == f"asm={flags & ~X264_CPU_AVX512}"
        assert x264_params("keyint=1") == f"keyint=1:{params}"
    assert x264_params("keyint=1:asm=0") == "keyint=1:asm=0"  # the caller's choice stands
