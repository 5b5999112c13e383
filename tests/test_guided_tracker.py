"""The guided tracker (classic + the bundled models' evidence): synthetic clips with known
masks, re-finding an object after a full occlusion with a stand-in saliency model, and J
floors on davis-train with the real bundled models (skipped where they or the clips are
missing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kinema.vision.base import Prompt
from kinema.vision.classic import ClassicTracker
from kinema.vision.guided import GuidedSettings, GuidedTracker
from kinema.vision.maskops import iou
from kinema.vision.synthetic import moving_object

DAVIS = Path(__file__).resolve().parents[1] / ".." / "shared" / "davis-train"


def scores(tracker, frames, masks) -> list[float]:
    tracker.add_prompt(Prompt(frame=0, mask=masks[0]))
    out = []
    for i, held in tracker.propagate(0):
        pred, truth = held[1], masks[i]
        out.append(1.0 if not pred.any() and not truth.any() else iou(pred, truth))
    return out


@pytest.mark.parametrize("kwargs", [{}, {"occluder": True}, {"similar_colours": 0.5}],
                         ids=["grow", "occluder", "similar-colours"])
def test_without_models_it_tracks_synthetic_clips(kwargs):
    scene = moving_object(n=40, size=(320, 240), **kwargs)
    # 0.90 - 0.95 (its sharper motion prior costs a little where colours are close: 0.90
    # against the classic tracker's 0.95 there; on davis-train it gains)
    assert np.mean(scores(GuidedTracker(scene), scene.frames, scene.masks)) >= 0.87


class Oracle:
    """A stand-in model: the truth for frames it knows (by content), plus a distractor."""

    def __init__(self, frames, masks, distractor):
        self.known = {f.tobytes(): m for f, m in zip(frames, masks, strict=True)}
        self.distractor = distractor
        self.calls = 0

    def __call__(self, rgb):
        self.calls += 1
        mask = self.known.get(rgb.tobytes())
        if mask is None:  # a crop: no opinion
            return np.full(rgb.shape[:2], 0.5, np.float32)
        return (mask | self.distractor).astype(np.float32)


def occluded_clip():
    """A moving object fully hidden (behind a grey wall) on frames 12..19, and a salient
    distractor of other colours in a corner on every frame."""
    scene = moving_object(n=36, size=(320, 240), seed=5)
    frames = [f.copy() for f in scene.frames]
    masks = [m.copy() for m in scene.masks]
    rng = np.random.default_rng(1)
    for i in range(12, 20):
        frames[i][:] = rng.normal(128, 6, frames[i].shape).clip(0, 255).astype(np.uint8)
        masks[i][:] = False
    distractor = np.zeros_like(masks[0])
    distractor[8:40, 8:48] = True
    for f in frames:
        f[distractor] = (20, 220, 40)
    return frames, masks, distractor


def test_refinds_the_object_after_a_full_occlusion():
    frames, masks, distractor = occluded_clip()
    salient = Oracle(frames, masks, distractor)
    # Without edge snapping the object is lost after the wall and found again (frame 22).
    unsnapped = GuidedTracker(frames, salient=salient, settings=GuidedSettings(edge_radius=0))
    guided = scores(unsnapped, frames, masks)
    classic = scores(ClassicTracker(frames), frames, masks)
    assert salient.calls > 0
    assert min(guided[28:]) >= 0.85, np.round(guided, 2)  # found again, not the distractor
    assert np.mean(guided[28:]) > np.mean(classic[28:]) + 0.2, (np.round(guided, 2), np.round(classic, 2))
    # With it (the default) the snapped edge keeps most of the returning object from frame 20
    # on (0.73, rising to 0.86), so it is never lost and the stand-in is not asked again.
    snapped = scores(GuidedTracker(frames, salient=Oracle(frames, masks, distractor)), frames, masks)
    assert min(snapped[20:]) >= 0.7, np.round(snapped, 2)
    assert np.mean(snapped[28:]) > np.mean(classic[28:]) + 0.2, (np.round(snapped, 2), np.round(classic, 2))


def test_a_person_prior_is_used_only_where_it_fits_the_keyframe():
    scene = moving_object(n=12, size=(320, 240))
    everywhere = GuidedTracker(scene, person=lambda rgb: np.ones(rgb.shape[:2], np.float32))
    everywhere.add_prompt(Prompt(frame=0, mask=scene.masks[0]))
    assert everywhere.kind(1) == ""
    oracle = Oracle(scene.frames, scene.masks, np.zeros_like(scene.masks[0]))
    tracker = GuidedTracker(scene, person=lambda rgb: oracle(rgb) if oracle.known.get(rgb.tobytes())
                            is not None else _crop_truth(scene, rgb))
    tracker.add_prompt(Prompt(frame=0, mask=scene.masks[0]))
    assert tracker.kind(1) == "person"
    assert np.mean([iou(m[1], scene.masks[i]) for i, m in tracker.propagate(0)]) >= 0.9


def _crop_truth(scene, rgb):
    """The true mask under a crop of one of ``scene``'s frames (found by template match)."""
    import cv2

    h, w = rgb.shape[:2]
    for frame, mask in zip(scene.frames, scene.masks, strict=True):
        hit = cv2.matchTemplate(frame, rgb, cv2.TM_SQDIFF)
        _, _, (x, y), _ = cv2.minMaxLoc(hit)
        if np.array_equal(frame[y:y + h, x:x + w], rgb):
            return mask[y:y + h, x:x + w].astype(np.float32)
    return np.full((h, w), 0.5, np.float32)


def test_finer_flow_on_a_crop_around_a_small_object():
    scene = moving_object(n=30, size=(320, 240), seed=2)
    tracker = GuidedTracker(scene)
    tracker.add_prompt(Prompt(frame=0, mask=scene.masks[0]))
    y0, y1, x0, x1 = tracker._flow_box(240, 320)
    assert (y1 - y0) * (x1 - x0) < 0.7 * 240 * 320
    back, fwd, scale = tracker._flows(scene.frames[0], scene.frames[1])
    assert scale == 1.0 and back.shape == (240, 320, 2)
    assert not back[:y0].any() and not fwd[:, x1:].any()  # nothing is computed outside the crop
    assert np.mean(scores(tracker, scene.frames, scene.masks)) >= 0.9
    whole = GuidedTracker(scene, settings=GuidedSettings(fine_area=0.0))
    whole.add_prompt(Prompt(frame=0, mask=scene.masks[0]))
    assert whole._flow_box(240, 320) is None  # the classic flow over the whole frame
    big = GuidedTracker(scene)
    big.add_prompt(Prompt(frame=0, mask=np.ones((240, 320), bool)))
    assert big._flow_box(240, 320) is None  # nothing to gain on an object filling the frame


def test_the_edge_snaps_to_the_frames_edge():
    from kinema.vision.guided import _snap_edge

    frame = np.full((120, 160, 3), 40, np.uint8)
    frame[30:90, 50:110] = 200  # a bright square on a dark ground
    truth = np.zeros((120, 160), bool)
    truth[30:90, 50:110] = True
    off = np.zeros_like(truth)
    off[32:92, 48:108] = True  # two pixels off, one way down, the other way left
    snapped = _snap_edge(frame, off, 4, 1e-3, 3)
    assert iou(snapped, truth) > iou(off, truth) + 0.05  # 0.94 against 0.88
    assert np.array_equal(_snap_edge(frame, truth, 4, 1e-3, 3), truth)  # a right edge stays
    far = np.zeros_like(truth)
    far[40:80, 40:100] = True  # on flat ground it only rounds the corners (a blur of the mask)
    flat = _snap_edge(np.full_like(frame, 90), far, 4, 1e-3, 3)
    assert not (flat & ~far).any() and iou(flat, far) > 0.95
    empty = np.zeros_like(truth)
    assert not _snap_edge(frame, empty, 4, 1e-3, 3).any()


def test_edge_snapping_can_be_turned_off():
    scene = moving_object(n=12, size=(320, 240), seed=4)
    on = scores(GuidedTracker(scene), scene.frames, scene.masks)
    off = scores(GuidedTracker(scene, settings=GuidedSettings(edge_radius=0)), scene.frames, scene.masks)
    assert on != off and min(np.mean(on), np.mean(off)) >= 0.9


class CropRecorder:
    """A stand-in salient model: the truth under a crop of the clip (found by template
    match), remembering the size of each picture it was given."""

    def __init__(self, scene):
        self.scene = scene
        self.sizes = []

    def __call__(self, rgb):
        self.sizes.append(rgb.shape[:2])
        return _crop_truth(self.scene, rgb)


def test_saliency_looks_at_the_object_every_nth_frame_and_refits_its_colours():
    scene = moving_object(n=25, size=(320, 240), seed=3)
    salient = CropRecorder(scene)
    settings = GuidedSettings(salient_every=5, fine_area=0.0)
    tracker = GuidedTracker(scene, salient=salient, settings=settings)
    tracker.add_prompt(Prompt(frame=0, mask=scene.masks[0]))
    assert tracker.kind(1) == "salient"  # its map fits the keyframe's mask
    keyed = tracker._anchors[1].fg.copy()
    salient.sizes.clear()
    j = scores(tracker, scene.frames, scene.masks)  # the keyframe again, then frames 1..24
    assert len(salient.sizes) == 5  # the keyframe, then frames 5, 10, 15 and 20
    assert all(h < 240 and w < 320 for h, w in salient.sizes)  # a crop, not the frame
    assert np.mean(j) >= 0.9
    assert not np.allclose(tracker._anchors[1].fg, keyed)  # a confident frame refitted it
    fixed = GuidedTracker(scene, salient=salient, settings=GuidedSettings(
        salient_every=5, fine_area=0.0, refit_fit=0.0))
    scores(fixed, scene.frames, scene.masks)
    assert np.allclose(fixed._anchors[1].fg, keyed)



def test_between_salient_passes_the_last_map_moves_with_the_object():
    """The last salient map is moved along by the flow and weighed, at a quarter of the
    person prior's weight, on the frames between passes; ``salient_carry=0`` turns it off."""
    scene = moving_object(n=12, size=(320, 240), seed=3)
    tracker = GuidedTracker(scene, salient=CropRecorder(scene),
                            settings=GuidedSettings(salient_every=5, fine_area=0.0))
    tracker.add_prompt(Prompt(frame=0, mask=scene.masks[0]))
    weights, seen = [], []
    evidence = tracker._evidence

    def spy(obj, current, box, expected):
        out = evidence(obj, current, box, expected)
        weights.append(tracker._evidence_weight(obj) if out is not None else None)
        if out is not None and tracker._carrying.get(obj):  # where it puts the object now
            y0, y1, x0, x1 = box
            i = next(k for k, f in enumerate(scene.frames) if f is current)
            seen.append(iou(out > 0.5, scene.masks[i][y0:y1, x0:x1]))
        return out

    tracker._evidence = spy
    j = scores(tracker, scene.frames, scene.masks)
    assert weights[4] == 0.5 and weights[9] == 0.5  # the passes, frames 5 and 10
    assert weights[:4] == [None] * 4  # no map yet
    assert weights[5:9] == [0.25] * 4 and weights[10] == 0.25  # carried
    assert min(seen) >= 0.8, np.round(seen, 2)  # it moved with the object
    assert np.mean(j) >= 0.9
    off = GuidedTracker(scene, salient=CropRecorder(scene),
                        settings=GuidedSettings(salient_every=5, fine_area=0.0, salient_carry=0))
    off.add_prompt(Prompt(frame=0, mask=scene.masks[0]))
    list(off.propagate(0))
    assert not off._carried


def test_memory_does_not_grow_with_the_shot():
    import tracemalloc

    frames, masks, distractor = occluded_clip()
    salient = Oracle(frames, masks, distractor)

    def held_after(n: int) -> int:
        tracker = GuidedTracker(frames, salient=salient)
        tracker.add_prompt(Prompt(frame=0, mask=masks[0]))
        tracemalloc.start()
        for _ in tracker.propagate(0, n):
            pass
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return held

    short, long = held_after(6), held_after(36)
    assert long - short < 5 * masks[0].nbytes, (short, long)


@pytest.fixture(scope="module")
def models():
    from kinema.core.errors import KinemaError
    from kinema.vision.oneclick import load_models

    try:
        return load_models(threads=2)
    except KinemaError as exc:
        pytest.skip(f"the bundled u2netp/mediapipe models are not usable here: {exc}")


def _davis(name: str, n: int) -> tuple[list[np.ndarray], np.ndarray]:
    from kinema.media import open_video

    if not (DAVIS / "videos" / f"{name}.mp4").is_file():
        pytest.skip(f"{DAVIS} is not present")
    with open_video(DAVIS / "videos" / f"{name}.mp4", prefetch=False) as reader:
        frames = [reader[i] for i in range(n)]
    z = np.load(DAVIS / "masks" / f"{name}.npz")
    masks = np.unpackbits(z["masks"][:n], axis=-1, count=int(z["shape"][2])).astype(bool)
    return frames, masks


@pytest.mark.parametrize(("clip", "kind", "floor"), [("tennis", "person", 0.8), ("bus", "salient", 0.85)])
def test_davis_floors_with_the_bundled_models(models, clip, kind, floor):
    salient, person = models
    frames, masks = _davis(clip, 20)
    tracker = GuidedTracker(frames, person=person, salient=salient)
    j = np.mean(scores(tracker, frames, masks)[1:])
    assert tracker.kind(1) == kind
    assert j >= floor, j

