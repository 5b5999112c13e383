"""The command line end to end, checked against frame indices in the pixels."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from conftest import decoded_audio
from kinema import __version__
from kinema.media import open_video
from kinema.media.image import read_image
from kinema.media.synth import decode_index, tone, write_clip


def kinema(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kinema", *args], capture_output=True,
                          text=True, timeout=300, env=env)


def test_version_and_help_are_fast():
    start = time.monotonic()
    result = kinema("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"kinema {__version__}"
    help_text = kinema("--help").stdout
    for command in ("probe", "frame", "proxy", "transcode"):
        assert command in help_text
    assert time.monotonic() - start < 5  # two interpreter starts, well under a second each


def test_probe_json(h264_bframes: Path):
    info = json.loads(kinema("probe", str(h264_bframes), "--json").stdout)
    v = info["video"]
    assert v["frames"] == 150 and v["fps"] == "30000/1001" and v["width"] == 320
    assert v["keyframes"] == 3 and v["rotation"] == 0 and info["audio"] == []


def test_frame_by_index_and_time(h264_bframes: Path, tmp_path: Path):
    out = tmp_path / "f.png"
    assert kinema("frame", str(h264_bframes), "--index", "77", "-o", str(out)).returncode == 0
    assert decode_index(read_image(out)) == 77
    # 2.5 s at 30000/1001 fps is inside frame 74 (74 * 1001/30000 = 2.469 s).
    result = kinema("frame", str(h264_bframes), "--time", "2.5", "-o", str(out), "--overwrite")
    assert result.returncode == 0 and "frame 74" in result.stdout
    assert decode_index(read_image(out)) == 74
    bad = kinema("frame", str(h264_bframes), "--index", "500", "-o", str(tmp_path / "g.png"))
    assert bad.returncode == 2 and not (tmp_path / "g.png").exists()
    assert "frame 500 is not one of the 150 frames" in bad.stderr


def test_transcode_range_with_audio(tmp_path: Path):
    src = write_clip(tmp_path / "src.mp4", n=60, fps=25, audio=tone(300.0, 2.4))
    dst = tmp_path / "part.mkv"
    result = kinema("transcode", str(src), str(dst), "--start", "10", "--end", "35")
    assert result.returncode == 0, result.stderr
    with open_video(dst) as r:
        assert len(r) == 25 and r.fps == 25
        assert [decode_index(f) for f in r.frames()] == list(range(10, 35))
    samples, rate, _ = decoded_audio(dst)
    assert abs(len(samples) / rate - 1.0) < 0.05  # the sound of frames 10..35 only


def test_transcode_to_png_sequence_and_prores(tmp_path: Path):
    src = write_clip(tmp_path / "src.mp4", n=6)
    assert kinema("transcode", str(src), str(tmp_path / "seq")).returncode == 0
    assert len(list((tmp_path / "seq").glob("frame_*.png"))) == 6
    mov = tmp_path / "out.mov"
    assert kinema("transcode", str(src), str(mov), "--codec", "prores4444").returncode == 0
    with open_video(mov) as r:
        assert r.codec == "prores" and [decode_index(f) for f in r.frames()] == list(range(6))


def test_proxy_command(tmp_path: Path):
    src = write_clip(tmp_path / "src.mp4", n=6)
    result = kinema("proxy", str(src), "--beside")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".kinema-proxies" / "src.mp4.proxy.mov").is_file()


def test_transcoded_range_keeps_sound_in_sync(tmp_path: Path):
    # A click at 1.5 s in the source; frames 25..50 (1.0 to 2.0 s) must carry it at 0.5 s.
    src = write_clip(tmp_path / "click.mkv", n=75, fps=25, start=Fraction(2),
                     audio=tone(200.0, 3.0, click_at=1.5))
    dst = tmp_path / "part.mp4"
    assert kinema("transcode", str(src), str(dst), "--start", "25", "--end", "50").returncode == 0
    samples, rate, _ = decoded_audio(dst)
    click = int(np.argmax(samples)) / rate
    assert abs(click - 0.5) < 0.01, click


def test_error_text_with_brackets_is_printed_verbatim():
    from typer.testing import CliRunner

    from kinema.cli import console
    from kinema.core.errors import MissingExtraError

    def boom() -> None:
        with console.exit_on_error():
            raise MissingExtraError("segmentation needs torch", hint="pip install 'kinema[ml]'")

    import typer

    app = typer.Typer()
    app.command()(boom)
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 1
    assert "pip install 'kinema[ml]'" in result.output


def test_a_cancelled_transcode_leaves_nothing_behind(tmp_path: Path):
    from kinema.app.media_jobs import transcode
    from kinema.core.jobs import Progress

    src = write_clip(tmp_path / "src.mp4", n=40)
    dst = tmp_path / "out" / "render.mp4"
    dst.parent.mkdir()
    job = transcode(src, dst)
    assert next(job) == Progress(1, 40)
    next(job)
    job.close()  # what a cancel button or Ctrl-C does to the generator
    assert list(dst.parent.iterdir()) == []


def test_new_project_from_a_video(tmp_path: Path):
    from kinema.document import store

    video = write_clip(tmp_path / "shot.mp4", n=30, fps=25, audio=tone(440.0, 1.2))
    result = kinema("new", str(tmp_path / "shot"), "--video", str(video))
    assert result.returncode == 0, result.stderr
    project = store.load(tmp_path / "shot.kinema")
    media = project.media["m1"]
    assert media.frames == 30 and media.rate == 25 and media.has_audio
    assert (tmp_path / "shot.kinema" / media.relative_path).resolve() == video.resolve()
    clip = project.timeline.video_layers[0].items[0]
    assert clip.source_range.frames() == range(0, 30)
    assert project.timeline.audio_tracks[0].items[0].media_id == "m1"
    again = kinema("new", str(tmp_path / "shot.kinema"), "--video", str(video))
    assert again.returncode == 1 and "already exists" in again.stderr


def test_wrong_arguments_get_one_error_line():
    for args in (["render", "p.kinema"], ["nosuch"], ["export", "matte", "p", "-o", "x"]):
        run = subprocess.run([sys.executable, "-m", "kinema", *args], capture_output=True, text=True)
        assert run.returncode == 2, args
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and "--help" in lines[0], run.stderr
