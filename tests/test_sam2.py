"""The SAM 2 backend with a tiny random-weight model: shapes, ids, streaming propagation both
ways, the embedding cache, corrections and bounded memory.

Random weights make the masks meaningless as segmentations, so the tests check behaviour
mechanically: sizes and types, which frames and objects come back, equality with transformers'
own whole-video propagation, what changes after a correction and what the session holds.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from kinema.core.errors import InvalidArgumentError  # noqa: E402
from kinema.models.tiny_sam2 import build_tiny_sam2  # noqa: E402
from kinema.vision.base import Prompt  # noqa: E402
from kinema.vision.sam2 import (  # noqa: E402
    Sam2ImageSegmenter,
    Sam2VideoTracker,
    read_preprocessing,
    to_pixels,
    upsample_masks,
)

W, H = 64, 48


def disc_frame(i: int, w: int = W, h: int = H) -> np.ndarray:
    """A yellow disc moving right over a blue-grey gradient."""
    yy, xx = np.mgrid[0:h, 0:w]
    frame = np.empty((h, w, 3), np.uint8)
    frame[..., 0] = 30 + (xx * 60 // w)
    frame[..., 1] = 60 + (yy * 40 // h)
    frame[..., 2] = 90
    cx, cy, r = (0.15 + 0.6 * ((i % 50) / 50)) * w, 0.5 * h, 0.15 * h
    frame[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = (240, 200, 40)
    return frame


class LazyFrames:
    """A FrameSource that draws each frame when asked and counts the reads."""

    def __init__(self, n: int, w: int = W, h: int = H) -> None:
        self.n, self.w, self.h, self.reads = n, w, h, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < self.n:
            raise IndexError(index)
        self.reads += 1
        return disc_frame(index, self.w, self.h)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread, above all on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sam2(tmp_path_factory.mktemp("sam2") / "tiny")


@pytest.fixture(scope="module")
def segmenter(tiny: Path) -> Sam2ImageSegmenter:
    return Sam2ImageSegmenter(tiny, device="cpu")


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    return [disc_frame(i) for i in range(30)]


def click(frame: int, x: float, y: float, object_id: int = 1, label: int = 1) -> Prompt:
    return Prompt(frame, object_id, points=((x, y),), labels=(label,))


def test_import_is_cheap() -> None:
    code = "import sys, kinema.vision.sam2; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_one_folder_serves_both_models(tiny: Path) -> None:
    from transformers import Sam2Model, Sam2VideoModel

    assert (tiny / "config.json").is_file() and (tiny / "model.safetensors").is_file()
    image, video = Sam2Model.from_pretrained(tiny), Sam2VideoModel.from_pretrained(tiny)
    assert torch.equal(image.mask_decoder.iou_token.weight, video.mask_decoder.iou_token.weight)
    pre = read_preprocessing(tiny)
    assert pre.image_size == video.config.image_size == 64
    assert pre.mean == pytest.approx((0.485, 0.456, 0.406))
    assert pre.std == pytest.approx((0.229, 0.224, 0.225))


def test_preprocessing_and_postprocessing(tiny: Path) -> None:
    pre = read_preprocessing(tiny)
    pixels = to_pixels(np.full((30, 100, 4), 255, np.uint8), pre, torch.device("cpu"), torch.float32)
    assert pixels.shape == (3, 64, 64)
    white = [(1 - m) / s for m, s in zip(pre.mean, pre.std, strict=True)]
    assert pixels[:, 0, 0].tolist() == pytest.approx(white, abs=1e-5)
    logits = torch.full((2, 16, 16), -1.0)
    logits[1, 4:12, 4:12] = 1.0
    masks = upsample_masks(logits, 48, 64)
    assert masks.shape == (2, 48, 64) and masks.dtype == bool
    assert not masks[0].any() and masks[1, 24, 32] and not masks[1, 0, 0]


def test_segment_gives_ranked_full_size_candidates(segmenter: Sam2ImageSegmenter) -> None:
    frame = disc_frame(0, 96, 72)
    prompts = [click(0, 20, 36), Prompt(0, box=(5, 20, 40, 55)),
               Prompt(0, points=((20, 36), (80, 10)), labels=(1, 0), box=(5, 20, 40, 55)),
               Prompt(0, mask=np.pad(np.ones((20, 20), bool), ((26, 26), (10, 66))))]
    results = [segmenter.segment(frame, prompt) for prompt in prompts]
    for candidates in results:
        assert len(candidates) == 3
        scores = [c.score for c in candidates]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
        for c in candidates:
            assert c.mask.shape == (72, 96) and c.mask.dtype == bool
    # different prompts, different masks
    assert not np.array_equal(results[0][0].mask, results[1][0].mask)
    assert not np.array_equal(results[1][0].mask, results[2][0].mask)


def test_embedding_is_cached_per_frame(tiny: Path) -> None:
    seg = Sam2ImageSegmenter(tiny, device="cpu", cache_size=2)
    calls = []
    inner = seg.model.get_image_embeddings
    seg.model.get_image_embeddings = lambda *a, **k: calls.append(1) or inner(*a, **k)
    frame = disc_frame(3)
    first = seg.segment(frame, click(3, 20, 24))
    second = seg.segment(frame.copy(), Prompt(3, points=((20, 24), (50, 10)), labels=(1, 0)))
    assert len(calls) == 1  # the second click reused the embedding (same pixels, same index)
    assert not np.array_equal(first[0].mask, second[0].mask)  # ...but the decoder did run again
    seg.segment(frame, click(4, 20, 24))  # another frame index
    seg.segment(disc_frame(9), click(3, 20, 24))  # other pixels
    assert len(calls) == 3
    seg.segment(frame, click(3, 20, 24))  # evicted: cache_size=2 and two newer frames
    assert len(calls) == 4
    seg.clear_cache()
    again = seg.segment(frame, Prompt(3, points=((20, 24), (50, 10)), labels=(1, 0)))
    assert len(calls) == 5
    assert [c.score for c in again] == [c.score for c in second]
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(again, second, strict=True))


def test_bad_prompts_are_one_line_errors(tiny: Path, segmenter: Sam2ImageSegmenter, clip) -> None:
    frame = clip[0]
    tracker = Sam2VideoTracker(clip, tiny, device="cpu")
    bad = [
        lambda: segmenter.segment(frame, click(0, 64, 10)),
        lambda: segmenter.segment(frame, click(0, -1, 10)),
        lambda: segmenter.segment(frame, Prompt(0, text="the dog")),
        lambda: segmenter.segment(frame, Prompt(0, box=(70, 50, 90, 60))),
        lambda: segmenter.segment(frame, Prompt(0, mask=np.ones((10, 10), bool))),
        lambda: tracker.propagate(0),  # nothing prompted yet
        lambda: tracker.add_prompt(click(30, 10, 10)),
        lambda: tracker.add_prompt(click(0, 10, 100)),
        lambda: tracker.add_prompt(Prompt(0, points=((5, 5),), labels=(1,), mask=np.ones((H, W), bool))),
        lambda: tracker.remove_object(7),
    ]
    for make in bad:
        with pytest.raises(InvalidArgumentError) as info:
            make()
        assert "\n" not in str(info.value)
    assert tracker.object_ids == []  # failed prompts leave no half-made object behind
    tracker.add_prompt(click(5, 10, 24))
    for make in (lambda: tracker.propagate(5, 3), lambda: tracker.propagate(5, 6, reverse=True),
                 lambda: tracker.propagate(5, 31), lambda: tracker.propagate(-1)):
        with pytest.raises(InvalidArgumentError):
            make()
    # a box reaching past the frame is clipped, not refused
    assert tracker.add_prompt(Prompt(5, 2, box=(-10, -10, 30, 30)))[2].shape == (H, W)


def test_tracking_equals_transformers_whole_video(tiny: Path, clip) -> None:
    """Streaming one frame at a time with the memory pruned to the model's window gives exactly
    what transformers gives with the whole video loaded and nothing pruned."""
    from transformers import Sam2VideoModel
    from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession

    frames = LazyFrames(24)
    tracker = Sam2VideoTracker(frames, tiny, device="cpu")
    tracker.add_prompt(click(0, 12, 24, object_id=1))
    tracker.add_prompt(Prompt(0, 2, box=(30, 5, 60, 40)))
    ours = dict(tracker.propagate(0))
    assert frames.reads == 1 + 1 + 24  # one read per prompt and per tracked frame, none kept

    model = Sam2VideoModel.from_pretrained(tiny).eval()
    pre = read_preprocessing(tiny)
    cpu = torch.device("cpu")
    video = torch.stack([to_pixels(disc_frame(i), pre, cpu, torch.float32) for i in range(24)])
    session = Sam2VideoInferenceSession(video=video, video_height=H, video_width=W, dtype=torch.float32)
    sx, sy = 64 / W, 64 / H
    for obj_id, coords, labels in ((1, [[12 * sx, 24 * sy]], [1]),
                                   (2, [[30 * sx, 5 * sy], [60 * sx, 40 * sy]], [2, 3])):
        inputs = {"point_coords": torch.tensor([[coords]]),
                  "point_labels": torch.tensor([[labels]], dtype=torch.int32)}
        session.add_point_inputs(session.obj_id_to_idx(obj_id), 0, inputs)
        session.obj_with_new_inputs = [obj_id]
        model(session, frame_idx=0)
    reference = {out.frame_idx: upsample_masks(out.pred_masks[:, 0], H, W)
                 for out in model.propagate_in_video_iterator(session, start_frame_idx=0)}
    assert sorted(ours) == list(range(24))
    for i in range(24):
        assert np.array_equal(ours[i][1], reference[i][0]) and np.array_equal(ours[i][2], reference[i][1])
    # the memory matters: a shorter window changes the result
    small = Sam2VideoTracker(LazyFrames(24), tiny, device="cpu", max_memory_frames=1)
    small.add_prompt(click(0, 12, 24, object_id=1))
    small.add_prompt(Prompt(0, 2, box=(30, 5, 60, 40)))
    assert any(not np.array_equal(masks[1], ours[i][1]) for i, masks in small.propagate(0))
    # the raw session kept every frame's outputs; ours kept the window
    assert len(session.output_dict_per_obj[0]["non_cond_frame_outputs"]) == 23
    assert tracker.memory_footprint()["tracked_outputs"] == 2 * (15 + 1)  # 15 behind, and the last frame


def test_objects_ids_and_mid_video_object(tiny: Path, clip) -> None:
    tracker = Sam2VideoTracker(clip, tiny, device="cpu")
    first = tracker.add_prompt(click(0, 12, 24, object_id=4))
    assert set(first) == {4} and first[4].shape == (H, W) and first[4].dtype == bool
    before = dict(tracker.propagate(0, 20))
    assert sorted(before) == list(range(20)) and all(set(m) == {4} for m in before.values())

    added = tracker.add_prompt(Prompt(10, 9, box=(20, 10, 50, 40)))
    assert set(added) == {4, 9} and tracker.object_ids == [4, 9]
    after = list(tracker.propagate(10, 20))
    assert [i for i, _ in after] == list(range(10, 20))
    for _, masks in after:
        assert set(masks) == {4, 9}
        assert all(m.shape == (H, W) and m.dtype == bool for m in masks.values())
    assert np.array_equal(after[0][1][9], added[9])  # the prompted frame keeps its mask
    assert any(not np.array_equal(m[4], m[9]) for _, m in after)

    tracker.remove_object(4)
    assert tracker.object_ids == [9]
    assert all(set(m) == {9} for _, m in tracker.propagate(19, 22))


def test_mask_prompts_track_and_correct(tiny: Path, clip) -> None:
    yy, xx = np.mgrid[0:H, 0:W]
    square = (abs(xx - 20) < 10) & (abs(yy - 24) < 10)
    tracker = Sam2VideoTracker(clip, tiny, device="cpu")
    given = tracker.add_prompt(Prompt(2, 5, mask=square))[5]
    assert (given & square).sum() / (given | square).sum() > 0.7  # SAM 2 takes a mask as it is
    tracked = dict(tracker.propagate(2, 8))
    assert np.array_equal(tracked[2][5], given)
    # a mask on a tracked frame is a correction too: that frame returns it, what follows changes
    other = (abs(xx - 44) < 10) & (abs(yy - 24) < 10)
    fixed = tracker.add_prompt(Prompt(5, 5, mask=other))[5]
    assert (fixed & other).sum() / (fixed | other).sum() > 0.7
    again = dict(tracker.propagate(5, 8))
    assert np.array_equal(again[5][5], fixed)
    assert any(not np.array_equal(again[i][5], tracked[i][5]) for i in (6, 7))


def test_propagates_backward_and_by_ranges(tiny: Path, clip) -> None:
    tracker = Sam2VideoTracker(clip, tiny, device="cpu")
    tracker.add_prompt(click(20, 40, 24))
    calls = []
    inner = tracker.model.get_image_features
    tracker.model.get_image_features = lambda *a, **k: calls.append(1) or inner(*a, **k)

    back = list(tracker.propagate(20, reverse=True))
    assert [i for i, _ in back] == list(range(20, -1, -1))
    assert len(calls) == 20  # the prompted frame's features were reused from the prompt
    assert tracker.memory_footprint()["features_held"] == 1

    ahead = [i for i, _ in tracker.propagate(20, 25)]  # the next five frames
    assert ahead == [20, 21, 22, 23, 24]
    assert [i for i, _ in tracker.propagate(25)] == list(range(25, 30))
    assert [i for i, _ in tracker.propagate(3, 0, reverse=True)] == [3, 2, 1]
    for _, masks in back:
        assert set(masks) == {1} and masks[1].shape == (H, W) and masks[1].dtype == bool
    # tracked backward, the frames are not what a forward pass from frame 0 would give
    forward = Sam2VideoTracker(clip, tiny, device="cpu")
    forward.add_prompt(click(0, 12, 24))
    ahead_masks = dict(forward.propagate(0, 20))
    assert any(not np.array_equal(ahead_masks[i][1], m[1]) for i, m in back if i < 20)


def test_correction_changes_masks_from_its_frame_on(tiny: Path, clip) -> None:
    n, k = len(clip), 12
    plain = Sam2VideoTracker(clip, tiny, device="cpu")
    plain.add_prompt(click(0, 12, 24))
    baseline = dict(plain.propagate(0))

    tracker = Sam2VideoTracker(clip, tiny, device="cpu")
    tracker.add_prompt(click(0, 12, 24))
    seen = dict(tracker.propagate(0))
    assert all(np.array_equal(seen[i][1], baseline[i][1]) for i in range(n))

    fix = Prompt(k, 1, points=((36, 24), (5, 5)), labels=(1, 0))
    corrected = tracker.add_prompt(fix)[1]
    assert not np.array_equal(corrected, baseline[k][1])
    # the correction is a conditioning frame now, its neighbours' stale memories are gone
    outputs = tracker.session.state.output_dict_per_obj[0]
    assert k in outputs["cond_frame_outputs"]
    assert not any(abs(f - k) <= tracker.model.config.num_maskmem for f in outputs["non_cond_frame_outputs"])

    again = dict(tracker.propagate(k))
    seen.update(again)
    # kept on its frame (transformers alone would re-run the frame without the clicks)...
    assert np.array_equal(again[k][1], corrected)
    # ...changes what follows, and leaves what came before alone
    assert all(np.array_equal(seen[i][1], baseline[i][1]) for i in range(k))
    assert sum(not np.array_equal(seen[i][1], baseline[i][1]) for i in range(k + 1, n)) >= (n - k - 1) // 2

    # a second correction on the same frame replaces the first one
    second = tracker.add_prompt(Prompt(k, 1, points=((36, 24),), labels=(1,)))[1]
    assert not np.array_equal(second, corrected)
    assert np.array_equal(next(iter(tracker.propagate(k)))[1][1], second)


def test_memory_stays_flat_over_a_long_video(tiny: Path) -> None:
    n, early = 260, 60
    frames = LazyFrames(n)
    tracker = Sam2VideoTracker(frames, tiny, device="cpu")
    tracker.add_prompt(click(0, 12, 24, object_id=1))
    tracker.add_prompt(click(0, 40, 24, object_id=2))
    footprints, traced = {}, {}
    try:
        for i, masks in tracker.propagate(0):
            assert masks[1].shape == (H, W)
            if i in (early, n - 1):
                footprints[i] = tracker.memory_footprint()
                gc.collect()  # transformers' outputs hold reference cycles: count live memory only
                if i == early:
                    tracemalloc.start()
                traced[i] = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert frames.reads == 2 + n
    small, large = footprints[early], footprints[n - 1]
    assert small == large  # same counts, same tensor bytes after 60 frames and after 260
    assert large["tracked_outputs"] <= 2 * (tracker.max_memory_frames + 1)
    assert large["prompted_outputs"] == 2 and large["frames_held"] == 0 and large["features_held"] == 1
    # Python-side growth over 200 frames, well under one mask (3 KB) or one memory entry a frame
    assert traced[n - 1] - traced[early] < 100_000
