"""The classical tracker against scenes with known masks: motion, scale, occlusion, corrections."""

from __future__ import annotations

import numpy as np
import pytest

from kinema.core.errors import InvalidArgumentError
from kinema.vision.base import Prompt
from kinema.vision.classic import ClassicTracker, grabcut_mask
from kinema.vision.maskops import iou
from kinema.vision.synthetic import moving_object


def tracked_iou(scene, tracker, start=0, reverse=False) -> list[float]:
    return [iou(masks[1], scene.masks[i]) for i, masks in tracker.propagate(start, reverse=reverse)]


@pytest.mark.parametrize("kwargs", [
    {},                                  # grows by 40 % while the camera pans
    {"scale_change": 0.6},               # shrinks
    {"occluder": True},                  # a bar passes in front and leaves again
    {"similar_colours": 0.5},            # object colours close to the background's
], ids=["grow", "shrink", "occlusion", "similar-colours"])
def test_tracks_from_a_first_frame_mask(kwargs):
    scene = moving_object(n=50, size=(320, 240), **kwargs)
    tracker = ClassicTracker(scene)
    tracker.add_prompt(Prompt(frame=0, mask=scene.masks[0]))
    scores = tracked_iou(scene, tracker)
    assert len(scores) == 50
    assert np.mean(scores) >= 0.9, np.round(scores, 2)


def test_the_object_comes_back_after_the_occluder():
    scene = moving_object(n=50, size=(320, 240), occluder=True)
    tracker = ClassicTracker(scene)
    tracker.add_prompt(Prompt(frame=0, mask=scene.masks[0]))
    scores = tracked_iou(scene, tracker)
    assert min(scores[40:]) >= 0.85  # after the bar has passed, the whole object again


def test_backwards_from_the_last_frame():
    scene = moving_object(n=40, size=(320, 240))
    tracker = ClassicTracker(scene)
    tracker.add_prompt(Prompt(frame=39, mask=scene.masks[39]))
    tracked = list(tracker.propagate(39, reverse=True))
    assert [i for i, _ in tracked] == list(range(39, -1, -1))
    assert np.mean([iou(masks[1], scene.masks[i]) for i, masks in tracked]) >= 0.9


def test_box_and_click_starts():
    scene = moving_object(n=1, size=(320, 240), seed=2)
    ys, xs = np.nonzero(scene.masks[0])
    box = grabcut_mask(scene.frames[0], Prompt(frame=0, box=(xs.min() - 4, ys.min() - 4,
                                                             xs.max() + 5, ys.max() + 5)))
    click = grabcut_mask(scene.frames[0], Prompt(frame=0, points=((xs.mean(), ys.mean()),),
                                                 labels=(1,)))
    assert iou(box, scene.masks[0]) >= 0.95 and iou(click, scene.masks[0]) >= 0.9
    again = grabcut_mask(scene.frames[0], Prompt(frame=0, points=((xs.mean(), ys.mean()),),
                                                  labels=(1,)))
    assert np.array_equal(again, click)  # GrabCut's k-means start is seeded: same click, same mask
    with pytest.raises(InvalidArgumentError, match="outside"):
        grabcut_mask(scene.frames[0], Prompt(frame=0, points=((400, 10),), labels=(1,)))
    with pytest.raises(InvalidArgumentError, match="text"):
        grabcut_mask(scene.frames[0], Prompt(frame=0, text="ball"))


def test_a_correction_changes_the_frames_after_it():
    scene = moving_object(n=40, size=(320, 240))
    wrong = np.roll(scene.masks[0], 40, axis=1)  # a start that is off by 40 px
    tracker = ClassicTracker(scene)
    tracker.add_prompt(Prompt(frame=0, mask=wrong))
    first = dict(tracker.propagate(0))
    before = [iou(first[i][1], scene.masks[i]) for i in range(40)]
    tracker.add_prompt(Prompt(frame=20, mask=scene.masks[20]))  # the user fixes frame 20
    after = [iou(m[1], scene.masks[i]) for i, m in tracker.propagate(20)]
    assert np.mean(before[21:]) < 0.6 and np.mean(after[1:]) >= 0.9
    assert iou(first[10][1], wrong) < 1  # the wrong start was tracked, not copied


def test_two_objects_and_a_keyframe_midway():
    scene = moving_object(n=30, size=(320, 240))
    static = np.zeros_like(scene.masks[0])
    static[10:40, 10:60] = True  # a patch of background: it should follow the camera pan
    tracker = ClassicTracker(scene)
    tracker.add_prompt(Prompt(frame=0, object_id=1, mask=scene.masks[0]))
    shown = tracker.add_prompt(Prompt(frame=0, object_id=2, mask=static))
    assert set(shown) == {1, 2}
    tracker.add_prompt(Prompt(frame=15, object_id=1, mask=scene.masks[15]))
    results = dict(tracker.propagate(0))
    assert set(results[29]) == {1, 2}
    assert np.array_equal(results[15][1], scene.masks[15])  # the keyframe holds
    assert 0.5 * static.sum() < results[29][2].sum() < 1.5 * static.sum()
    assert not (results[29][1] & results[29][2]).sum() > 0.05 * results[29][2].sum()


def test_bad_calls():
    scene = moving_object(n=5, size=(64, 48))
    tracker = ClassicTracker(scene)
    with pytest.raises(InvalidArgumentError, match="no object"):
        list(tracker.propagate(0))
    with pytest.raises(InvalidArgumentError, match="outside the video"):
        tracker.add_prompt(Prompt(frame=9, mask=scene.masks[0]))
    with pytest.raises(InvalidArgumentError, match="empty"):
        Prompt(frame=0)


def test_memory_does_not_grow_with_the_shot():
    """The tracker keeps keyframes and the last tracked mask, not every mask it yielded."""
    import tracemalloc

    scene = moving_object(n=60, size=(320, 240))

    def held_after(frames: int) -> int:
        tracker = ClassicTracker(scene)
        tracker.add_prompt(Prompt(frame=0, mask=scene.masks[0]))
        tracemalloc.start()
        for _ in tracker.propagate(0, frames):
            pass
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return held

    short, long = held_after(10), held_after(60)
    assert long - short < 5 * scene.masks[0].nbytes, (short, long)  # 50 more masks: 3.8 MB


def test_a_resumed_propagation_and_a_correction_on_the_last_tracked_frame():
    scene = moving_object(n=20, size=(320, 240))
    tracker = ClassicTracker(scene)
    tracker.add_prompt(Prompt(frame=0, mask=scene.masks[0]))
    first = dict(tracker.propagate(0, 10))
    assert np.array_equal(tracker.mask_on(1, 9), first[9][1]) and tracker.mask_on(1, 5) is None
    rest = dict(tracker.propagate(9))
    assert list(rest) == list(range(9, 20)) and np.array_equal(rest[9][1], first[9][1])
    ys, xs = np.nonzero(scene.masks[19])
    shown = tracker.add_prompt(Prompt(frame=19, points=((xs.mean(), ys.mean()),), labels=(1,)))
    assert iou(shown[1], scene.masks[19]) >= 0.9


@pytest.mark.parametrize("size", [(8, 8), (64, 2), (2, 2)])
def test_frames_too_small_for_optical_flow(size):
    """DIS flow refuses frames under 12 px a side: they are tracked on an enlarged copy."""
    w, h = size
    frames = [np.roll(np.eye(max(size), dtype=np.uint8)[:h, :w, None] * 200, i, axis=1).repeat(3, 2)
              for i in range(4)]
    tracker = ClassicTracker(frames)
    tracker.add_prompt(Prompt(frame=0, mask=frames[0][..., 0] > 0))
    tracked = list(tracker.propagate(0))
    assert [i for i, _ in tracked] == [0, 1, 2, 3]
    assert all(masks[1].shape == (h, w) for _, masks in tracked)
