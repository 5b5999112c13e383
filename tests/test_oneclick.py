"""The one-click segmenter (kinema.vision.oneclick): its parts on synthetic probability maps
with known answers, the routing with stand-in models, the fallback to GrabCut, and with the
real bundled models (skipped until ``kinema models fetch-bundled u2netp mediapipe``) IoU
floors on ``../shared/davis-train`` first frames, a negative click and a box."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from kinema.vision.base import Prompt
from kinema.vision.maskops import iou
from kinema.vision.oneclick import (
    OneClickSegmenter,
    Settings,
    component_under,
    refine,
    remove_negatives,
    separate_people,
)

DAVIS = Path(__file__).resolve().parents[1].parent / "shared" / "davis-train"


def disc(shape: tuple[int, int], centre: tuple[int, int], radius: int) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.circle(mask, centre, radius, 1, -1)
    return mask.astype(bool)


# --- no models: the parts -------------------------------------------------------------------


def test_component_under_keeps_only_the_clicked_blob():
    a, b = disc((100, 200), (50, 50), 20), disc((100, 200), (150, 50), 20)
    assert np.array_equal(component_under(a | b, [(150, 50)]), b)
    assert np.array_equal(component_under(a | b, [(50, 50), (150, 50)]), a | b)
    assert not component_under(a | b, [(100, 95)]).any()


def test_negative_click_removes_its_own_component():
    frame = np.zeros((100, 200, 3), np.uint8)
    a, b = disc((100, 200), (50, 50), 20), disc((100, 200), (150, 50), 20)
    assert np.array_equal(remove_negatives(a | b, frame, [], [(150, 50)]), a)


def test_negative_click_on_the_clicked_blob_splits_it_along_the_picture():
    # one blob over two differently coloured halves: the negative click takes its half away
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[:, :100] = (200, 40, 40)
    frame[:, 100:] = (40, 40, 200)
    blob = np.zeros((100, 200), bool)
    blob[20:80, 40:160] = True
    out = remove_negatives(blob, frame, [(60, 50)], [(140, 50)])
    left = blob.copy()
    left[:, 100:] = False
    assert iou(out, left) > 0.9


def test_refine_moves_a_blurred_probability_edge_onto_the_picture_edge():
    truth = disc((120, 160), (80, 60), 35)
    frame = np.where(truth[..., None], (230, 200, 60), (30, 60, 120)).astype(np.uint8)
    # the model's map: right place, blurred and too big (a low-resolution model's edge)
    prob = cv2.GaussianBlur(disc((120, 160), (80, 60), 40).astype(np.float32), (0, 0), 6)
    coarse = component_under(prob > 0.5, [(80, 60)])
    fine = refine(frame, prob, coarse, Settings(refine="grabcut"), ((80, 60),))
    assert iou(fine, truth) > iou(coarse, truth) + 0.03
    assert iou(fine, truth) > 0.95
    # the guided filter only nudges the edge (a few pixels): never worse than the model's
    guided = refine(frame, prob, coarse, Settings(refine="guided"), ((80, 60),))
    assert iou(guided, truth) >= iou(coarse, truth)


def test_people_standing_together_are_separated_by_their_skeletons():
    h, w = 200, 200
    frame = np.full((h, w, 3), 20, np.uint8)
    frame[:, :100] = (180, 60, 60)
    frame[:, 100:] = (60, 60, 180)
    blob = np.zeros((h, w), bool)
    blob[20:190, 30:170] = True  # two people as one blob of the person model

    def skeleton(cx: float) -> np.ndarray:
        xy = np.tile([cx, 100.0], (33, 1))
        xy[0] = (cx, 30)  # nose
        xy[[11, 12]] = [(cx - 15, 60), (cx + 15, 60)]  # shoulders
        xy[[23, 24]] = [(cx - 10, 120), (cx + 10, 120)]  # hips
        xy[[25, 26, 27, 28]] = [(cx - 10, 150), (cx + 10, 150), (cx - 10, 180), (cx + 10, 180)]
        xy[[13, 14, 15, 16]] = [(cx - 20, 90), (cx + 20, 90), (cx - 20, 110), (cx + 20, 110)]
        return xy

    out = separate_people(blob, frame, [skeleton(60), skeleton(140)], [(60, 100)])
    assert out[100, 50] and not out[100, 150]
    assert out[:, 100:].sum() < 0.05 * out.sum()


class Stand_in:
    """A model that returns a fixed probability map, whatever the crop: enough to follow the
    segmenter's decisions with a known answer."""

    def __init__(self, prob: np.ndarray) -> None:
        self.prob, self.calls = prob, 0
        self.shape = prob.shape

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        self.calls += 1
        if rgb.shape[:2] == self.shape:
            return self.prob
        return cv2.resize(self.prob, rgb.shape[1::-1])  # a crop: only the shape matters here


def test_routing_person_or_salient_by_the_person_probability_under_the_click():
    shape = (120, 200)
    person_blob, thing = disc(shape, (50, 60), 25), disc(shape, (150, 60), 25)
    frame = np.zeros((*shape, 3), np.uint8)
    frame[person_blob] = (200, 150, 120)
    frame[thing] = (60, 200, 60)
    person = Stand_in(person_blob.astype(np.float32))
    salient = Stand_in((person_blob | thing).astype(np.float32))
    seg = OneClickSegmenter(salient, person, pose=None, settings=Settings(refine="none"))
    mask = seg.segment(frame, Prompt(frame=0, points=((50, 60),), labels=(1,)))[0].mask
    assert seg.last_kind == "person" and iou(mask, person_blob) > 0.9
    mask = seg.segment(frame, Prompt(frame=0, points=((150, 60),), labels=(1,)))[0].mask
    assert seg.last_kind == "salient" and iou(mask, thing) > 0.9


def test_a_box_keeps_what_is_inside_it():
    shape = (120, 200)
    blob = np.zeros(shape, bool)
    blob[30:90, 20:180] = True
    frame = np.zeros((*shape, 3), np.uint8)
    frame[blob] = 200
    seg = OneClickSegmenter(Stand_in(blob.astype(np.float32)), Stand_in(np.zeros(shape, np.float32)),
                            pose=None, settings=Settings(refine="none"))
    mask = seg.segment(frame, Prompt(frame=0, box=(10, 10, 100, 110)))[0].mask
    assert mask.any() and not mask[:, 101:].any()
    assert seg.last_kind == "box"


def test_without_the_bundled_models_clicks_fall_back_to_grabcut_with_a_warning(
        tmp_path, monkeypatch, kinema_warnings):
    from kinema.models import backends
    from kinema.vision.classic import GrabCutSegmenter

    monkeypatch.setenv("KINEMA_MODELS", str(tmp_path))
    segmenter = backends.create("segment", "auto")
    assert isinstance(segmenter, GrabCutSegmenter)
    assert any("kinema models fetch-bundled" in m for m in kinema_warnings)


def test_segment_command_warns_and_still_writes_the_mask(tmp_path, make_clip):
    import os
    import subprocess
    import sys

    video = make_clip("oneclick.mp4", n=3, size=(96, 64))
    env = {**os.environ, "KINEMA_MODELS": str(tmp_path / "none")}
    run = subprocess.run([sys.executable, "-m", "kinema", "segment", str(video), "--frame", "0",
                          "--point", "48,32", "-o", str(tmp_path / "m.png")],
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "kinema models fetch-bundled" in warnings[0], run.stderr
    assert (tmp_path / "m.png").is_file()


# --- the real models ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real():
    from kinema.core.errors import KinemaError

    try:
        return OneClickSegmenter(threads=2)
    except KinemaError as exc:  # no bundled model, or no runtime
        pytest.skip(f"the bundled u2netp/mediapipe models are not usable here: {exc}")


def _davis(name: str) -> tuple[np.ndarray, np.ndarray]:
    from kinema.media import open_video

    if not (DAVIS / "videos" / f"{name}.mp4").is_file():
        pytest.skip(f"{DAVIS} is not present")
    with open_video(DAVIS / "videos" / f"{name}.mp4", prefetch=False) as reader:
        image = reader[0]
    z = np.load(DAVIS / "masks" / f"{name}.npz")
    return image, np.unpackbits(z["masks"][0], axis=-1, count=int(z["shape"][2])).astype(bool)


def _deepest(mask: np.ndarray) -> tuple[float, float]:
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(distance.argmax()), distance.shape)
    return float(x), float(y)


@pytest.mark.parametrize(("clip", "kind", "floor"), [("hike", "person", 0.85), ("rhino", "salient", 0.85),
                                                     ("soccerball", "salient", 0.8)])
def test_real_one_click_matches_the_ground_truth(real, clip, kind, floor):
    image, truth = _davis(clip)
    mask = real.segment(image, Prompt(frame=0, points=(_deepest(truth),), labels=(1,)))[0].mask
    assert real.last_kind == kind
    assert iou(mask, truth) >= floor


def test_real_negative_click_removes_a_region(real):
    # flamingo: the salient blob under the click holds the bird and the bird behind it
    image, truth = _davis("flamingo")
    x, y = _deepest(truth)
    whole = real.segment(image, Prompt(frame=0, points=((x, y),), labels=(1,)))[0].mask
    other = (640, 80)
    assert whole[other[1], other[0]] and not truth[other[1], other[0]]
    cut = real.segment(image, Prompt(frame=0, points=((x, y), other), labels=(1, 0)))[0].mask
    assert not cut[other[1], other[0]] and cut[int(y), int(x)]
    assert cut.sum() < 0.75 * whole.sum()
    assert iou(cut, truth) > iou(whole, truth) + 0.2


def test_real_box_restricts_the_mask(real):
    image, truth = _davis("rhino")
    ys, xs = np.nonzero(truth)
    mid = int((xs.min() + xs.max()) / 2)
    box = (float(xs.min() - 10), float(ys.min() - 10), float(mid), float(ys.max() + 10))
    mask = real.segment(image, Prompt(frame=0, box=box))[0].mask
    assert real.last_kind == "box"
    assert mask.any() and not mask[:, mid + 1:].any()
    half = truth.copy()
    half[:, mid:] = False
    assert iou(mask, half) > 0.7
