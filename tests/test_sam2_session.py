"""The adapter over transformers' SAM 2 internals: the versions it supports, and one loaded SAM 2
shared by an image segmenter and a video tracker (one set of weights, the same masks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from kinema.core.errors import InvalidArgumentError  # noqa: E402
from kinema.models.tiny_sam2 import build_tiny_sam2  # noqa: E402
from kinema.vision.base import Prompt  # noqa: E402
from kinema.vision.sam2 import Sam2ImageSegmenter, Sam2VideoTracker, load_sam2  # noqa: E402
from kinema.vision.sam2_session import TRANSFORMERS_VERSIONS, Sam2Session, image_model, supports  # noqa: E402

W, H = 64, 48


def frames(n: int = 8) -> list[np.ndarray]:
    """A bright square moving right over a dark background."""
    out = []
    for i in range(n):
        frame = np.full((H, W, 3), 30, np.uint8)
        frame[16:32, 8 + 3 * i:24 + 3 * i] = (240, 200, 40)
        out.append(frame)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sam2(tmp_path_factory.mktemp("sam2") / "tiny")


def test_the_installed_transformers_is_one_the_adapter_supports() -> None:
    assert supports(transformers.__version__), (
        f"transformers {transformers.__version__} is outside {TRANSFORMERS_VERSIONS}: check "
        "kinema/vision/sam2_session.py against its SAM 2 video internals, then widen the range")
    low, high = TRANSFORMERS_VERSIONS
    assert supports(low) and not supports(high) and supports("5.24.0.dev0")


def test_one_loaded_sam2_serves_a_segmenter_and_a_tracker(tiny: Path) -> None:
    shared = load_sam2(tiny, device="cpu")
    segmenter = Sam2ImageSegmenter(shared)
    tracker = Sam2VideoTracker(frames(), shared)
    # one set of weights: every tensor of the image model is one of the video model's
    video_tensors = {t.data_ptr() for t in shared.model.parameters()}
    assert {t.data_ptr() for t in segmenter.model.parameters()} <= video_tensors
    assert tracker.model is shared.model

    click = Prompt(0, 1, points=((16, 24),), labels=(1,))
    alone = Sam2ImageSegmenter(tiny, device="cpu")  # Sam2Model loaded from the folder, as before
    pairs = zip(segmenter.segment(frames()[0], click), alone.segment(frames()[0], click), strict=True)
    for got, want in pairs:
        assert np.array_equal(got.mask, want.mask) and got.score == pytest.approx(want.score, abs=1e-6)

    tracker.add_prompt(click)
    own = Sam2VideoTracker(frames(), tiny, device="cpu")
    own.add_prompt(click)
    for (i, got), (j, want) in zip(tracker.propagate(0), own.propagate(0), strict=True):
        assert i == j and np.array_equal(got[1], want[1])


def test_an_image_only_sam2_cannot_track(tiny: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="cannot track"):
        Sam2VideoTracker(frames(), load_sam2(tiny, device="cpu", kind="image"))


def test_the_session_adapter_bounds_memory_and_forgets_objects(tiny: Path) -> None:
    loaded = load_sam2(tiny, device="cpu")
    assert {n for n, _ in image_model(loaded.model).named_children()} <= {
        n for n, _ in loaded.model.named_children()}
    reach = loaded.model.config.num_maskmem - 1  # frames of spatial memory the model reads
    session = Sam2Session(loaded.model, 12, device=loaded.device, dtype=loaded.dtype)
    session.set_video_size(H, W)
    pixels = torch.zeros(3, 64, 64)
    points = (torch.tensor([[[[16.0, 24.0]]]]), torch.tensor([[[1]]], dtype=torch.int32))
    with torch.inference_mode():
        for obj_id in (1, 2):
            session.prompt(obj_id, 0, points=points)
            ids, logits, tracked = session.step(0, pixels, reverse=False)
        assert ids == [1, 2] and logits.shape[0] == 2 and tracked == set()
        for index in range(1, 12):
            session.prune(index, False, keep=reach, memory_reach=reach)
            ids, _, tracked = session.step(index, pixels, reverse=False)
            assert tracked == {1, 2}
    session.prune(11, False, keep=reach, memory_reach=reach)
    held = session.footprint()
    assert held["prompted_outputs"] == 2 and held["frames_held"] == 0
    assert held["tracked_outputs"] == 2 * (reach + 1) < 2 * 11  # this frame and the window behind
    session.forget(1)
    assert session.object_ids == [2] and session.footprint()["prompted_outputs"] == 1
