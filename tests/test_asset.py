"""kinema asset: a picture from words, its object cut out with a soft straight alpha, trimmed,
recorded, and placed in a project. Tiny random-weight models (their pictures are noise, their
masks random: plumbing only); the cut-out itself on synthetic pictures with known discs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
cv2 = pytest.importorskip("cv2")

from typer.testing import CliRunner  # noqa: E402

from kinema.app.provenance import read_provenance, used_recipes  # noqa: E402
from kinema.cli.main import app  # noqa: E402
from kinema.core.errors import InvalidArgumentError, KinemaError  # noqa: E402
from kinema.document.recipes import AssetRecipe  # noqa: E402
from kinema.media.image import read_image  # noqa: E402
from kinema.vision.cutout import Cutter, Settings, cut_out, subject_of  # noqa: E402

DISC = (30, 60, 230)
GROUND = (235, 230, 220)


def disc_picture(size: tuple[int, int] = (128, 128), centre: tuple[int, int] = (70, 60),
                 radius: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """A blue disc (antialiased) on a plain light ground, and the disc's true mask."""
    w, h = size
    picture = np.empty((h, w, 3), np.uint8)
    picture[:] = GROUND
    cv2.circle(picture, centre, radius, DISC, -1, lineType=cv2.LINE_AA)
    truth = np.zeros((h, w), np.uint8)
    cv2.circle(truth, centre, radius, 1, -1)
    return picture, truth.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def salient():
    """The bundled u2netp salient-object model, or skip."""
    from kinema.models.bundled import model_file
    from kinema.vision.oneclick import SALIENT, SalientModel

    try:
        return SalientModel(model_file(*SALIENT))
    except KinemaError as exc:
        pytest.skip(f"bundled u2netp is not here ({exc})")


@pytest.fixture(scope="module")
def tiny_cutout_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Tiny random-weight Grounding DINO and SAM 2 folders."""
    pytest.importorskip("transformers")
    from kinema.models.tiny_grounding_dino import build_tiny_grounding_dino
    from kinema.models.tiny_sam2 import build_tiny_sam2

    root = tmp_path_factory.mktemp("cutout")
    return build_tiny_grounding_dino(root / "gdino"), build_tiny_sam2(root / "sam2")


def kinema_asset(*args: str):
    return CliRunner().invoke(app, ["asset", *map(str, args)])


def recipe_of(png: Path) -> AssetRecipe:
    record = json.loads(png.with_name(png.name + ".provenance.json").read_text())
    return AssetRecipe.model_validate(record["operations"][0])


def test_subject_is_the_prompts_first_phrase():
    assert subject_of("a ufo, brushed metal, glowing underside") == "ufo"
    assert subject_of("The red car on a wet road at night") == "red car"
    assert subject_of("an old lamp with a green shade") == "old lamp"
    assert subject_of("  , a dragon") == "dragon"
    with pytest.raises(InvalidArgumentError):
        subject_of(" , the ")


def test_salient_cutout_of_a_disc(salient):
    picture, truth = disc_picture()
    cut = Cutter(salient=salient)(picture, "disc")
    assert cut.found and cut.score is None
    x0, y0, x1, y1 = cut.box
    alpha = cut.rgba[..., 3]
    placed = np.zeros(truth.shape, np.uint8)
    placed[y0:y1, x0:x1] = alpha
    assert iou(placed > 127, truth) >= 0.9
    # a real alpha: transparent ground, opaque disc, soft values along the edge only
    assert (alpha == 0).any() and (alpha == 255).any()
    soft = (alpha > 0) & (alpha < 255)
    assert soft.any() and soft.sum() < 0.5 * (alpha > 0).sum()
    # straight alpha: the picture's colours untouched wherever anything shows
    assert np.array_equal(cut.rgba[..., :3], picture[y0:y1, x0:x1])
    # trimmed to the disc (x 40..100, y 30..90), its soft edge and the margin (at most 4 + 8
    # pixels), with the object's centre on the disc's
    assert 28 <= x0 <= 40 and 18 <= y0 <= 30 and 101 <= x1 <= 113 and 91 <= y1 <= 103
    assert abs(x0 + cut.centre[0] - 70.5) <= 1 and abs(y0 + cut.centre[1] - 60.5) <= 1


def test_nothing_found_keeps_the_whole_picture_opaque(salient):
    flat = np.full((48, 64, 3), 128, np.uint8)
    cut = Cutter(salient=salient)(flat, "ufo")
    assert not cut.found and cut.box == (0, 0, 64, 48) and cut.centre == (32, 24)
    assert cut.rgba.shape == (48, 64, 4) and (cut.rgba[..., 3] == 255).all()
    assert np.array_equal(cut.rgba[..., :3], flat)
    picture, truth = disc_picture()
    assert cut_out(picture, np.zeros_like(truth)).found is False
    h, w = cut_out(picture, truth, Settings(margin=0)).rgba.shape[:2]  # the 61-pixel disc,
    assert 61 <= h <= 65 and 61 <= w <= 65  # its antialiased edge at most 2 pixels a side


def test_detector_path_plumbing(tiny_cutout_models: tuple[Path, Path]):
    """Tiny Grounding DINO boxes, tiny SAM 2 masks inside the box (random: shapes only)."""
    from kinema.app.asset_jobs import load_cutter

    gdino, sam2 = tiny_cutout_models
    loaded, segmenter, detector = load_cutter("detector", gdino, sam2, device="cpu",
                                              settings=Settings(box_threshold=0.0))
    assert loaded.method == "detector"
    assert (segmenter.model_id, detector.model_id) == (str(sam2.resolve()), str(gdino.resolve()))
    picture = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    cut = loaded(picture, "ufo")
    x0, y0, x1, y1 = cut.box
    assert 0 <= x0 < x1 <= 80 and 0 <= y0 < y1 <= 64
    assert cut.rgba.shape == (y1 - y0, x1 - x0, 4) and cut.score is not None
    nothing = Cutter(detector=loaded.detector, segmenter=loaded.segmenter,
                     settings=Settings(box_threshold=1.01))(picture, "ufo")
    assert not nothing.found and (nothing.rgba[..., 3] == 255).all()


def test_same_seed_same_png_and_its_recipe(tiny_sdxl: Path, tiny_lora: Path,
                                           tiny_cutout_models: tuple[Path, Path], tmp_path: Path):
    from kinema.models.registry import identity

    gdino, sam2 = tiny_cutout_models
    common = ["a ufo, brushed metal", "--model", tiny_sdxl, "--seed", 7, "--size", "64x48",
              "--negative", "blurry", "--steps", 3, "--scheduler", "euler_a", "--guidance", 4.5,
              "--lora", f"{tiny_lora}:0.5", "--cutout", "detector", "--detector", gdino,
              "--segmenter", sam2, "--min-score", 0, "--device", "cpu"]
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    for out in (first, second):
        run = kinema_asset(*common, "-o", out)
        assert run.exit_code == 0, run.output
    assert first.read_bytes() == second.read_bytes()
    rgba = read_image(first)
    assert rgba.ndim == 3 and rgba.shape[2] == 4 and rgba.shape[0] <= 48 and rgba.shape[1] <= 64
    recipe = recipe_of(first)
    assert (recipe.prompt, recipe.negative, recipe.seed, recipe.steps, recipe.scheduler,
            recipe.guidance, recipe.size, recipe.subject) == ("a ufo, brushed metal", "blurry", 7, 3,
                                                               "euler_a", 4.5, (64, 48), "ufo")
    sdxl = identity(tiny_sdxl, task="text-to-image")
    assert (recipe.model.model_id, recipe.model.weights_sha256) == (sdxl.model_id, sdxl.weights_sha256)
    assert recipe.device == "cpu" and recipe.dtype == "float32"
    from kinema.core.hashing import file_sha256

    assert [(lora.weights_sha256, lora.weight) for lora in recipe.loras] == [(file_sha256(tiny_lora), 0.5)]
    assert recipe.cutout.model_id == str(sam2.resolve()) and recipe.detector.model_id == str(gdino.resolve())
    assert recipe.cutout_settings["box_threshold"] == 0.0 and recipe.cutout_settings["feather"] == 4.0
    assert {m.model_id for m in recipe.models()} >= {sdxl.model_id, str(sam2.resolve())}


def test_noise_has_no_object_the_picture_is_kept_with_a_warning(tiny_sdxl: Path, salient,
                                                                  tmp_path: Path):
    out = tmp_path / "ufo.png"
    run = kinema_asset("a ufo, brushed metal", "--model", tiny_sdxl, "--cutout", "salient",
                       "--device", "cpu", "-o", out)
    assert run.exit_code == 0, run.output
    assert "warning: the cut-out found no 'ufo'" in run.stderr and len(run.stderr.splitlines()) == 1
    rgba = read_image(out)
    assert rgba.shape == (64, 64, 4) and (rgba[..., 3] == 255).all()  # the card's size, opaque
    recipe = recipe_of(out)
    assert recipe.uncut and recipe.cutout.model_id == "bundled:u2netp/u2netp.onnx"
    assert recipe.detector is None and recipe.steps == 2  # the tiny model's card
    odd = kinema_asset("a cup", "--model", tiny_sdxl, "--size", "60x60", "--cutout", "salient",
                       "-o", tmp_path / "odd.png")
    assert odd.exit_code == 2 and "not a multiple of 8" in odd.stderr
    assert not (tmp_path / "odd.png").exists()


def test_progress_per_step_and_a_cancel_writes_nothing(tiny_sdxl: Path, salient, tmp_path: Path):
    from kinema.app.asset_jobs import make_asset
    from kinema.generate.sdxl import Request

    out = tmp_path / "gone.png"
    job = make_asset(Request("a cup", steps=4), out, model=tiny_sdxl, cutout="salient", device="cpu")
    first = next(job)
    assert (first.done, first.total, first.unit) == (1, 6, "steps")
    job.close()
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.fixture
def disc_generator(monkeypatch: pytest.MonkeyPatch):
    """The tiny SDXL's pictures replaced by a disc on a plain ground (its steps still reported):
    noise has no object to cut out."""
    from kinema.generate.sdxl import ImageGenerator

    def generate(self, request, on_step=None):
        r = request.settled(self.card)
        for step in range(1, r.steps + 1):
            if on_step is not None:
                on_step(step, r.steps)
        return disc_picture(r.size)[0]

    monkeypatch.setattr(ImageGenerator, "generate", generate)


def test_project_layer_renders_the_object_at_the_point(tiny_sdxl: Path, salient, disc_generator,
                                                       tmp_path: Path):
    from kinema.app.project_jobs import new_project
    from kinema.app.render_job import render
    from kinema.document import store
    from kinema.document.model import AssetItem
    from kinema.media.synth import write_clip

    folder = new_project(tmp_path / "shot", write_clip(tmp_path / "bg.mp4", n=12, size=(160, 120)))
    out = tmp_path / "disc.png"
    run = kinema_asset("a blue disc, flat", "--model", tiny_sdxl, "--size", "128x128", "--cutout",
                       "salient", "--device", "cpu", "-o", out, "--project", folder,
                       "--at", "100,70@5", "--scale", "0.5")
    assert run.exit_code == 0, run.output
    assert "layer l2" in run.stdout
    rgba = read_image(out)
    assert (rgba[..., 3] == 0).any() and (rgba[..., 3] == 255).any() and rgba.shape[0] < 128
    project = store.load(folder)
    item = project.timeline.video_layers[-1].items[0]
    assert isinstance(item, AssetItem) and item.still and (item.start, item.duration) == (5, 7)
    assert project.media[item.media_id].path == str(out.resolve())
    stored = project.recipes[f"asset-{item.media_id}"]
    assert isinstance(stored, AssetRecipe) and stored.subject == "blue disc" and not stored.uncut
    assert project.media[item.media_id].recipe_id == stored.id
    # a render's provenance names the recipe of the asset it shows
    assert stored in used_recipes(project)
    for _ in render(folder, tmp_path / "frames"):
        pass
    assert "asset" in {op["operation"] for op in read_provenance(tmp_path / "frames")["operations"]}
    frames = sorted((tmp_path / "frames").glob("frame_*.png"))

    def blue(frame: int, x: int, y: int) -> int:
        return int(read_image(frames[frame])[y, x, 2])

    # the disc (radius 30, scaled to 15) centred on 100,70 from frame 5 on, the clip elsewhere
    assert blue(4, 100, 70) < 150 and blue(5, 100, 70) > 200 and blue(11, 110, 70) > 200
    assert blue(5, 100, 60) > 200 and blue(5, 100, 90) < 150 and blue(5, 120, 70) < 150


def test_bad_input_is_one_error_line_and_writes_nothing(tiny_sdxl: Path, tmp_path: Path):
    from kinema.app.project_jobs import new_project
    from kinema.media.synth import write_clip

    folder = new_project(tmp_path / "shot", write_clip(tmp_path / "bg.mp4", n=4, size=(64, 48)))
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"mine")
    out = tmp_path / "new.png"
    cases = [
        (["a cup", "-o", taken], "already exists"),
        (["a cup", "-o", out, "--size", "64by48"], "--size '64by48' is not WxH"),
        (["a cup", "-o", out, "--project", folder, "--at", "10,10"], "does not say which frame"),
        (["a cup", "-o", out, "--project", folder, "--at", "10,10@9"], "outside the timeline"),
        (["a cup", "-o", out, "--at", "10,10@0"], "--project and --at go together"),
        (["a cup", "-o", tmp_path / "cup.jpg"], "an asset is a PNG"),
        (["a cup", "-o", out, "--model", "sdxl-turbo"], "kinema models pull sdxl-turbo"),
        (["a cup", "-o", out, "--model", tiny_sdxl, "--lora", tmp_path / "no.safetensors:1"],
         "LoRA file not found"),
    ]
    for args, message in cases:
        run = kinema_asset(*args)
        lines = run.stderr.strip().splitlines()
        assert run.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error:"), run.output
        assert message in lines[0], lines[0]
    assert taken.read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bg.mp4", "shot.kinema", "taken.png"]
