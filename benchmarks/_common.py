"""What every benchmark report starts with: the machine it ran on."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import av
import cv2


def machine_line() -> str:
    """Platform, CPU, cores, Python, PyAV, FFmpeg, OpenCV and the load average at the start."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.platform()} | {cpu} | nproc {len(os.sched_getaffinity(0))} | "
            f"Python {platform.python_version()} | PyAV {av.__version__} | "
            f"FFmpeg {av.ffmpeg_version_info} | OpenCV {cv2.__version__} | load {load}")
