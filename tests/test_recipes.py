"""Typed recipes: one model per operation, told apart by ``operation``, upgraded as read."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from kinema.document import recipes, store
from kinema.document.model import Project, Timeline
from kinema.document.recipes import (
    AssetRecipe,
    ControlRef,
    InputRef,
    InterpolateRecipe,
    LoraRef,
    LoraTrainRecipe,
    ModelRef,
    MusicRecipe,
    PoseRecipe,
    PromptRecord,
    PropagateRecipe,
    RestyleRecipe,
    SegmentRecipe,
    StyleKey,
    T2VRecipe,
    UpscaleRecipe,
)

SDXL = ModelRef(model_id="stabilityai/sdxl", revision="462165", weights_sha256="aa")
SAMPLING = {"steps": 4, "guidance": 0.0, "scheduler": "euler", "model": SDXL, "seed": 7}


def one_of_each() -> list[recipes.RecipeBase]:
    frame = InputRef(id="m1", sha256="5e1f")
    return [
        SegmentRecipe(id="seg", backend="classic", inputs=[frame],
                      prompts=[PromptRecord(frame=3, points=[(1.5, 2.0)], labels=[1])]),
        AssetRecipe(id="ufo", prompt="a ufo, brushed metal", size=(1024, 1024), subject="ufo",
                    cutout=ModelRef(model_id="briaai/RMBG-1.4"), **SAMPLING),
        RestyleRecipe(id="lava", prompt="red hot lava", track_id="obj1", frames=[0, 24, 47],
                      strength=0.7, margin=8, feather=4.0, inputs=[frame],
                      controls=[ControlRef(model_id="canny-sdxl", kind="canny", weight=0.6,
                                           thresholds=(100, 200))],
                      loras=[LoraRef(model_id="face.safetensors", weights_sha256="bb", weight=0.8)],
                      **SAMPLING),
        PropagateRecipe(id="carry", keys=[StyleKey(frame=0, sha256="cc")], track_id="obj1",
                        start=0, end=48, guides={"colour": 1.0, "temporal": 0.5}, inputs=[frame]),
        InterpolateRecipe(id="slow", backend="flow", rate=Fraction(60000, 1001), inputs=[frame]),
        UpscaleRecipe(id="big", backend="lanczos", scale=2),
        PoseRecipe(id="pose-1", backend="mediapipe", start=0, end=48, detect_every=5, smooth=True,
                   model=ModelRef(model_id="bundled:mediapipe/pose_landmark_full.tflite"),
                   detector=ModelRef(model_id="bundled:mediapipe/pose_detection.tflite")),
        LoraTrainRecipe(id="face", token="sks person", prompt="a photo of sks person", steps=500,
                        rank=4, lr=1e-4, batch=1, resolution=1024, model=SDXL, seed=0,
                        inputs=[InputRef(id="a.jpg", sha256="dd")]),
        T2VRecipe(id="clip", prompt="a lighthouse at dusk", size=(832, 480), frames=81,
                  rate=Fraction(16), **SAMPLING),
        MusicRecipe(id="score", prompt="calm piano", duration=Fraction(15, 2),
                    model=ModelRef(model_id="facebook/musicgen-small"), loudness=-14.0),
    ]


def test_every_operation_round_trips_as_its_own_type(tmp_path: Path):
    made = {r.id: r for r in one_of_each()}
    project = Project(name="all", recipes=made,
                      timeline=Timeline(rate=Fraction(24), width=64, height=48, duration=1))
    back = store.load(store.create(tmp_path / "p", project)).recipes
    assert back == made and [type(r) for r in back.values()] == [type(r) for r in made.values()]
    assert {r.operation for r in back.values()} == {
        "segment", "asset", "restyle", "propagate", "interpolate", "upscale", "pose", "lora-train",
        "t2v", "music"}
    assert back["slow"].model_dump(mode="json")["rate"] == "60000/1001"
    # provenance names every model an operation ran
    assert [m.model_id for m in back["lava"].models()] == [
        "stabilityai/sdxl", "face.safetensors", "canny-sdxl"]


def test_upgrades_bring_each_type_forward_step_by_step(monkeypatch):
    """How a type's layout changes: it raises its version and adds a step to UPGRADES."""
    monkeypatch.setitem(recipes.UPGRADES, ("upscale", 1),
                        lambda data: {**data, "version": 2, "scale": data["scale"] * 2})
    old = UpscaleRecipe(id="big", backend="lanczos", scale=2).model_dump(mode="json")
    assert recipes.upgrade(old) == {**old, "version": 2, "scale": 4}
    untyped = {"id": "x", "operation": "upscale", "parameters": {"scale": 3}}  # none was ever written
    assert recipes.upgrade(untyped)["operation"] == "foreign"
