"""Interpolation (RIFE), upscaling (Real-ESRGAN, Lanczos) and speech detection (Silero VAD).

Tests with real weights skip with the reason when the bundled models are not fetched; the RIFE
architecture is also checked on a tiny state dict of the published layout built in code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kinema.core.errors import ModelNotFoundError

cv2 = pytest.importorskip("cv2")


def bundled_or_skip(bundle: str, member: str) -> Path:
    from kinema.models.bundled import model_file

    try:
        return model_file(bundle, member)
    except ModelNotFoundError as exc:
        pytest.skip(f"bundled model {bundle} not fetched ({exc}); run: kinema models fetch-bundled {bundle}")


# ---- RIFE ---------------------------------------------------------------------------------------

SQUARE = 24


def scene(x: int, w: int = 160, h: int = 96) -> np.ndarray:
    """A textured square at column ``x`` over a textured background."""
    rng = np.random.default_rng(1)
    frame = (rng.random((h // 4, w // 4, 3)) * 80 + 40).astype(np.uint8).repeat(4, 0).repeat(4, 1)
    tex = (rng.random((SQUARE // 2, SQUARE // 2, 3)) * 255).astype(np.uint8).repeat(2, 0).repeat(2, 1)
    y = h // 2 - SQUARE // 2
    frame[y:y + SQUARE, x:x + SQUARE] = tex
    return frame


def square_x(frame: np.ndarray) -> int:
    """Where the square's texture matches best along its row."""
    tex = scene(0)[36:60, 0:SQUARE].astype(np.float32)
    scores = [np.abs(frame[36:60, x:x + SQUARE].astype(np.float32) - tex).mean()
              for x in range(frame.shape[1] - SQUARE)]
    return int(np.argmin(scores))


def test_rife_moves_the_square_half_way() -> None:
    pytest.importorskip("torch")
    from kinema.generate.rife import Rife, blend

    weights = bundled_or_skip("rife", "flownet.pkl")
    rife = Rife(weights, device="cpu")
    assert rife.widths == (192, 128, 96, 64)
    a, b, truth = scene(40), scene(72), scene(56)
    mid = rife.interpolate(a, b, 0.5)
    assert mid.shape == a.shape and mid.dtype == np.uint8
    assert abs(square_x(mid) - 56) <= 2
    err = np.abs(mid.astype(float) - truth).mean()
    assert err < 0.6 * np.abs(blend(a, b).astype(float) - truth).mean()
    quarter = rife.interpolate(a, b, 0.25)  # any t, not only the middle
    assert abs(square_x(quarter) - 48) <= 2
    assert np.array_equal(rife.interpolate(a, b, 0.0), a)


def test_rife_architecture_loads_the_published_layout_tiny() -> None:
    pytest.importorskip("torch")
    from kinema.generate.rife import Rife, inference_keys, tiny_state_dict

    state = tiny_state_dict()
    assert any(k.startswith("module.block_tea.") for k in state)  # as in flownet.pkl
    rife = Rife(state, device="cpu")
    assert rife.widths == (16, 12, 8, 8)
    assert set(rife.net.state_dict()) == set(inference_keys(state))
    a, b = scene(40, 100, 72), scene(60, 100, 72)  # padded to 128 and cropped back
    out = rife.interpolate(a, b, 0.3)
    assert out.shape == (72, 100, 3) and out.dtype == np.uint8
    broken = {k: v for k, v in state.items() if "block2.lastconv" not in k}
    with pytest.raises(ModelNotFoundError, match="fetch-bundled rife"):
        Rife(broken, device="cpu")


def test_interpolate_command_doubles_the_rate_and_keeps_sound(tmp_path: Path) -> None:
    from kinema.app.restore_jobs import interpolate_video
    from kinema.core.jobs import run
    from kinema.generate.rife import Blend
    from kinema.media import open_video
    from kinema.media.probe import probe
    from kinema.media.writer import VideoWriter

    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    tone = (0.3 * np.sin(np.linspace(0, 880 * np.pi, 48000))).astype(np.float32)[None].repeat(2, 0)
    with VideoWriter(src, 12, (160, 96), audio_samples=tone, audio_rate=48000) as w:
        for k in range(12):
            w.write(scene(10 + 8 * k))
    result = run(interpolate_video(src, dst, factor=2, interpolator=Blend(), backend="blend"))
    assert result.rate == 24 and result.frames == 24 and not result.vfr
    info = probe(dst)
    assert info.video.frames == 24 and info.video.fps == "24"
    assert info.audio and abs(info.audio[0].duration - 1.0) < 0.05
    with open_video(dst) as r, open_video(src) as s:
        assert np.abs(r[4].astype(int) - s[2]).mean() < 3  # source frames stay where they were


# ---- upscaling ----------------------------------------------------------------------------------

def pattern(n: int = 192, square: int = 32) -> np.ndarray:
    """A sharp checkerboard with red text: edges a resize blurs."""
    img = np.full((n, n, 3), 235, np.uint8)
    for i in range(0, n, square):
        for j in range(0, n, square):
            if (i // square + j // square) % 2:
                img[i:i + square, j:j + square] = 20
    cv2.putText(img, "KINEMA", (8, n // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (200, 30, 30), 4, cv2.LINE_AA)
    return img


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(float) - b) ** 2)))


@pytest.mark.parametrize("scale", [2, 4])
def test_realesrgan_beats_bicubic_on_a_known_pattern(scale: int) -> None:
    pytest.importorskip("ncnn")
    bundled_or_skip("realesrgan", f"realesr-animevideov3-x{scale}.bin")
    from kinema.generate.upscale import Lanczos, RealEsrgan

    hi = pattern()
    lo = cv2.resize(hi, (hi.shape[1] // scale, hi.shape[0] // scale), interpolation=cv2.INTER_AREA)
    up = RealEsrgan("animevideov3", scale).upscale(lo)
    assert up.shape == hi.shape
    bicubic = cv2.resize(lo, hi.shape[1::-1], interpolation=cv2.INTER_CUBIC)
    assert psnr(up, hi) > psnr(bicubic, hi) + 1.0
    assert Lanczos(scale).upscale(lo).shape == hi.shape


def test_realesrgan_x4plus_runs() -> None:
    pytest.importorskip("ncnn")
    bundled_or_skip("realesrgan", "realesrgan-x4plus.bin")
    from kinema.generate.upscale import RealEsrgan

    lo = cv2.resize(pattern(64, 16), (16, 16), interpolation=cv2.INTER_AREA)
    up = RealEsrgan("x4plus", 2).upscale(lo)  # the 4x network, then Lanczos to 2x
    assert up.shape == (32, 32, 3)
    assert psnr(up, cv2.resize(pattern(64, 16), (32, 32), interpolation=cv2.INTER_AREA)) > 12


def test_tiles_join_without_seams_and_memory_follows_the_tile() -> None:
    pytest.importorskip("ncnn")
    bundled_or_skip("realesrgan", "realesr-animevideov3-x2.bin")
    from kinema.generate.upscale import RealEsrgan, TileStats

    img = cv2.resize(pattern(), (90, 70), interpolation=cv2.INTER_AREA)
    net = RealEsrgan("animevideov3", 2, tile=32, overlap=8)
    stats = TileStats()
    tiled = net.upscale(img, stats)
    net.tile = 512
    whole = net.upscale(img)
    diff = np.abs(tiled.astype(int) - whole)
    assert diff.mean() < 1.0 and np.percentile(diff, 99.9) <= 16
    # no seam: rows and columns at tile borders differ no more than the rest
    assert diff[:, 60:68].mean() < 3 * diff.mean() + 0.5
    assert stats.tiles == 9 and stats.largest[0] <= 32 + 16 and stats.largest[1] <= 32 + 16


def test_tiling_is_exact_for_a_pointwise_upscaler_and_bounded() -> None:
    from kinema.generate.upscale import TileStats, tiled

    def nearest(x: np.ndarray) -> np.ndarray:
        return x.repeat(3, 0).repeat(3, 1).astype(np.float32)

    for size in ((50, 37), (400, 300)):
        img = np.random.default_rng(0).integers(0, 256, (*size[::-1], 3), dtype=np.uint8)
        stats = TileStats()
        out = tiled(img, 3, nearest, tile=40, overlap=6, stats=stats)
        assert np.array_equal(out, nearest(img).astype(np.uint8))
        # the network never sees more than one tile and its overlap, whatever the image size
        assert max(w for w, _ in stats.shapes) <= 52 and max(h for _, h in stats.shapes) <= 52
        assert stats.tiles == -(-size[0] // 40) * -(-size[1] // 40)


def test_upscale_command_image_and_errors(tmp_path: Path) -> None:
    from kinema.app.restore_jobs import upscale_media
    from kinema.core.errors import InvalidArgumentError
    from kinema.core.jobs import run
    from kinema.media.image import read_image, write_image

    src = write_image(tmp_path / "in.png", pattern(64, 16))
    assert run(upscale_media(src, tmp_path / "out.png", scale=2, model="lanczos")) == (128, 128)
    assert read_image(tmp_path / "out.png").shape == (128, 128, 3)
    with pytest.raises(InvalidArgumentError, match="scale"):
        run(upscale_media(src, tmp_path / "x.png", scale=5, model="lanczos"))
    with pytest.raises(InvalidArgumentError, match="unknown backend"):
        run(upscale_media(src, tmp_path / "x.png", model="nope"))


# ---- speech -------------------------------------------------------------------------------------

def test_speech_spans_match_spoken_words(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    bundled_or_skip("silero-vad", "silero_vad.onnx")
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed (make test installs it)")
    from conftest import decoded_audio, write_wav
    from kinema.app.restore_jobs import speech_spans

    spoken = tmp_path / "spoken.wav"
    subprocess.run([espeak, "-w", str(spoken), "The quick brown fox jumps over the lazy dog."],
                   check=True, capture_output=True)
    voice, rate, _ = decoded_audio(spoken)
    voice = voice / 32768.0 if np.abs(voice).max() > 1.5 else voice
    lead, tail = 1.5, 2.0
    samples = np.concatenate([np.zeros(int(lead * rate)), voice, np.zeros(int(tail * rate))])
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    start, end = loud[0] / rate, loud[-1] / rate
    path = write_wav(tmp_path / "speech.wav", samples, rate)
    spans = speech_spans(path)
    assert spans, "no speech found"
    assert abs(spans[0].start - start) < 0.2 and abs(spans[-1].end - end) < 0.2
    assert all(start - 0.2 < s.start and s.end < end + 0.2 for s in spans)
    silence = write_wav(tmp_path / "silence.wav", np.zeros(3 * rate), rate)
    assert speech_spans(silence) == []


def test_speech_command_json_and_no_sound(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    bundled_or_skip("silero-vad", "silero_vad.onnx")
    from typer.testing import CliRunner

    from conftest import write_wav
    from kinema.cli.main import app
    from kinema.media.image import write_image

    quiet = write_wav(tmp_path / "quiet.wav", np.zeros(16000), 16000)
    result = CliRunner().invoke(app, ["speech", str(quiet), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"speech": []}
    picture = write_image(tmp_path / "p.png", np.zeros((8, 8, 3), np.uint8))
    result = CliRunner().invoke(app, ["speech", str(picture)])
    assert result.exit_code == 1 and "has no sound" in result.output


def test_upscale_keeps_a_variable_rate_source_s_frame_times(tmp_path: Path) -> None:
    from fractions import Fraction

    from kinema.app.restore_jobs import upscale_media
    from kinema.core.jobs import run
    from kinema.media import open_video
    from kinema.media.synth import decode_index, pattern_frame
    from kinema.media.writer import VideoWriter

    times = [Fraction(ms, 1000) for ms in (0, 33, 73, 123, 190, 290, 307, 390)]
    src = tmp_path / "vfr.mkv"
    with VideoWriter(src, 30, (160, 96), time_base=Fraction(1, 1000)) as writer:
        for i, t in enumerate(times):
            writer.write(pattern_frame(i, 160, 96), t)
    assert run(upscale_media(src, tmp_path / "big.mkv", scale=2, model="lanczos")) == (320, 192)
    with open_video(tmp_path / "big.mkv") as out:
        assert out.is_vfr and [out.timestamp(i) for i in range(len(out))] == times
        assert [decode_index(out[i]) for i in range(len(out))] == list(range(len(times)))
