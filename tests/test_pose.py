"""Pose: OpenPose conversion and control images, SSD decoding, ROIs, tracking, One Euro; the
real BlazePose models on shared clips (skipped until ``kinema models fetch-bundled mediapipe``)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kinema.vision.pose import (
    LANDMARK_NAMES,
    OPENPOSE_COLOURS,
    OPENPOSE_LIMBS,
    OPENPOSE_NAMES,
    STICK_WIDTH,
    Detection,
    OneEuro,
    Person,
    PoseTracker,
    Roi,
    decode_detections,
    draw_openpose,
    letterbox,
    match,
    roi_from_keypoints,
    ssd_anchors,
    to_openpose,
    weighted_nms,
)

DAVIS = Path(__file__).resolve().parents[1].parent / "shared" / "davis-train"
DOG = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "dog.mp4"

# A figure standing in a 400x400 frame, OpenPose order.
FIGURE = np.array([
    (200, 60), (200, 110), (150, 110), (120, 170), (100, 230), (250, 110), (280, 170),
    (300, 230), (170, 230), (160, 300), (150, 370), (230, 230), (240, 300), (250, 370),
    (185, 50), (215, 50), (170, 60), (230, 60)], float)


def figure(confidence: float = 0.9) -> np.ndarray:
    return np.c_[FIGURE, np.full(18, confidence)]


# --- OpenPose --------------------------------------------------------------------------------

def test_openpose_layout_from_mediapipe_landmarks():
    lm = np.zeros((33, 4))
    lm[:, 0] = np.arange(33) * 10
    lm[:, 1] = np.arange(33) * 10 + 1
    lm[:, 3] = 0.9
    lm[LANDMARK_NAMES.index("left_knee"), 3] = 0.1  # hidden
    lm[LANDMARK_NAMES.index("left_shoulder"), 3] = 0.6
    op = to_openpose(lm)
    assert op.shape == (18, 3)
    for k, name in enumerate(OPENPOSE_NAMES):
        if name in ("neck", "left_knee"):
            continue
        m = LANDMARK_NAMES.index(name)
        assert op[k].tolist() == [m * 10, m * 10 + 1, 0.9 if name != "left_shoulder" else 0.6]
    neck = op[OPENPOSE_NAMES.index("neck")]
    assert neck.tolist() == [115, 116, 0.6]  # between landmarks 11 and 12, the lesser visibility
    assert op[OPENPOSE_NAMES.index("left_knee")].tolist() == [0, 0, 0]
    assert OPENPOSE_NAMES[2] == "right_shoulder" and OPENPOSE_LIMBS[0] == (1, 2)


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((points - a) @ ab) / (ab @ ab), 0, 1)
    return np.linalg.norm(points - (a + t[:, None] * ab), axis=1)


def test_control_image_draws_each_limb_in_its_colour_and_nothing_else():
    image = draw_openpose([figure()], (400, 400))
    assert image.shape == (400, 400, 3) and image.dtype == np.uint8
    limb_colours = [tuple(int(c * 0.6) for c in col) for col in OPENPOSE_COLOURS[:17]]
    allowed = {(0, 0, 0), *limb_colours, *OPENPOSE_COLOURS}
    seen = {tuple(c) for c in np.unique(image.reshape(-1, 3), axis=0)}
    assert seen <= allowed
    assert set(limb_colours) <= seen and set(OPENPOSE_COLOURS) <= seen
    ys, xs = np.mgrid[:400, :400]
    pixels = np.c_[xs.ravel(), ys.ravel()].astype(float)
    flat = image.reshape(-1, 3)
    for i, (a, b) in enumerate(OPENPOSE_LIMBS):
        # the limb's colour where the limb is (its middle, clear of the joints' discs) ...
        mid = ((FIGURE[a] + FIGURE[b]) / 2).astype(int)
        assert tuple(image[mid[1], mid[0]]) == limb_colours[i], OPENPOSE_NAMES[a] + "-" + OPENPOSE_NAMES[b]
        # ... and nowhere else
        where = np.all(flat == limb_colours[i], axis=1)
        assert _segment_distance(pixels[where], FIGURE[a], FIGURE[b]).max() <= STICK_WIDTH + 1.5
    for k, (x, y) in enumerate(FIGURE.astype(int)):
        assert tuple(image[y, x]) == OPENPOSE_COLOURS[k], OPENPOSE_NAMES[k]
        where = np.all(flat == OPENPOSE_COLOURS[k], axis=1)
        assert np.linalg.norm(pixels[where] - (x, y), axis=1).max() <= 4.5
    assert not image[:40].any() and not image[380:].any()  # black around the figure


def test_control_image_leaves_out_missing_keypoints_and_their_limbs():
    kp = figure()
    kp[OPENPOSE_NAMES.index("left_knee")] = 0
    image = draw_openpose([kp, np.zeros((18, 3))], (400, 400))
    knee, hip, ankle = FIGURE[12].astype(int), FIGURE[11], FIGURE[13]
    assert not image[knee[1], knee[0]].any()
    assert not image[int((hip[1] + knee[1]) / 2), int((hip[0] + knee[0]) / 2)].any()
    assert not image[int((ankle[1] + knee[1]) / 2), int((ankle[0] + knee[0]) / 2)].any()
    assert tuple(image[int(hip[1]), int(hip[0])]) == OPENPOSE_COLOURS[11]
    assert not draw_openpose([], (64, 32)).any()


# --- detection decoding and regions ----------------------------------------------------------

def test_ssd_anchors_match_blazepose():
    anchors = ssd_anchors()
    assert anchors.shape == (2254, 2)
    assert np.allclose(anchors[0], [0.5 / 28, 0.5 / 28]) and np.allclose(anchors[1], anchors[0])
    assert np.allclose(anchors[2], [1.5 / 28, 0.5 / 28])
    assert np.allclose(anchors[1568], [0.5 / 14, 0.5 / 14])  # the stride-16 grid starts
    assert np.allclose(anchors[1960:1966], [0.5 / 7, 0.5 / 7])  # 3 layers x 2 per stride-32 cell
    assert np.allclose(anchors[-1], [6.5 / 7, 6.5 / 7])


def test_decode_and_weighted_nms_on_synthetic_output():
    anchors = ssd_anchors()
    raw = np.zeros((2254, 12), np.float32)
    logits = np.full(2254, -10.0, np.float32)

    def put(k, dx, dy, size, kps, logit):
        raw[k, :4] = (dx, dy, size, size)
        raw[k, 4:] = np.ravel(kps)
        logits[k] = logit

    a, b = 28 * 10 + 10, 28 * 10 + 11  # neighbouring cells: one person seen twice
    put(2 * a, 0, 0, 40, [(0, 0), (0, -30), (0, -20), (0, -35)], 4.0)
    put(2 * b, -8, 0, 40, [(-8, 0), (-8, -30), (-8, -20), (-8, -35)], 2.0)
    far = 1568 + 2 * (14 * 3 + 3)
    put(far, 0, 0, 30, [(0, 0), (0, -20), (0, -10), (0, -25)], 3.0)
    boxes, kps, scores = decode_detections(raw, logits, anchors)
    assert len(boxes) == 3
    centre = anchors[2 * a] + np.array([0, 0]) / 224
    assert np.allclose(boxes[np.argmax(scores)], [*(centre - 20 / 224), *(centre + 20 / 224)])
    assert np.allclose(kps[np.argmax(scores)][1], centre + np.array([0, -30]) / 224)
    boxes, kps, scores = weighted_nms(boxes, kps, scores)
    assert len(boxes) == 2
    s1, s2 = 1 / (1 + math.exp(-4)), 1 / (1 + math.exp(-2))
    assert scores[0] == pytest.approx(s1)
    merged_x = (s1 * anchors[2 * a][0] + s2 * (anchors[2 * b][0] - 8 / 224)) / (s1 + s2)
    assert (boxes[0, 0] + boxes[0, 2]) / 2 == pytest.approx(merged_x)
    assert kps[1][0] == pytest.approx(anchors[far])


def test_roi_from_keypoints_is_upright_on_the_body():
    upright = roi_from_keypoints(np.array([100.0, 200.0]), np.array([100.0, 120.0]))
    assert (upright.cx, upright.cy, upright.angle) == (100, 200, 0)
    assert upright.size == pytest.approx(2 * 80 * 1.25)
    lying = roi_from_keypoints(np.array([100.0, 200.0]), np.array([180.0, 200.0]))
    assert lying.angle == pytest.approx(math.pi / 2)
    m = lying.crop_to_image(256)
    # the crop's top middle is towards the head, its centre on the hips
    assert m @ [128, 0, 1] == pytest.approx([100 + lying.size / 2, 200])
    assert m @ [128, 128, 1] == pytest.approx([100, 200])
    assert Roi(10, 10, 20).corners() == pytest.approx(np.array([[0, 0], [20, 0], [20, 20], [0, 20]]))
    scale, px, py = letterbox(854, 480, 224)
    assert scale == pytest.approx(224 / 854) and px == 0 and py == pytest.approx((224 - 480 * scale) / 2)


# --- tracking ------------------------------------------------------------------------------

class Scripted:
    """A stand-in estimator: people are boxes scripted per frame ("frames" are indices)."""

    min_presence = 0.5

    def __init__(self, script: list[dict[str, tuple[float, float]]], size: float = 100.0):
        self.script, self.size = script, size
        self.calls = {"detect": 0, "landmarks": 0}

    def _person(self, cx: float, cy: float, presence: float = 1.0) -> Person:
        s = self.size
        lm = np.c_[np.linspace(cx - s / 4, cx + s / 4, 33), np.linspace(cy - s / 2, cy + s / 2, 33),
                   np.zeros(33), np.ones(33)]
        roi = roi_from_keypoints(np.array([cx, cy]), np.array([cx, cy - s / 2]))
        return Person(lm, presence, roi, roi)

    def detect(self, frame: int) -> list[Detection]:
        self.calls["detect"] += 1
        found = []
        for cx, cy in reversed(list(self.script[frame].values())):  # not in id order
            s = self.size
            kp = np.array([[cx, cy], [cx, cy - s / 2], [cx, cy - s / 4], [cx, cy - s / 2]])
            found.append(Detection(np.array([cx - s / 4, cy - s / 2, cx + s / 4, cy + s / 2]), kp, 0.9))
        return found

    def landmarks(self, frame: int, roi: Roi) -> Person:
        self.calls["landmarks"] += 1
        people = list(self.script[frame].values())
        if not people:
            return self._person(roi.cx, roi.cy, presence=0.0)
        cx, cy = min(people, key=lambda p: math.hypot(p[0] - roi.cx, p[1] - roi.cy))
        if math.hypot(cx - roi.cx, cy - roi.cy) > roi.size / 2:
            return self._person(roi.cx, roi.cy, presence=0.0)
        return self._person(cx, cy)


def test_tracker_keeps_identities_and_detects_only_when_needed():
    script = []
    for t in range(40):
        people = {"a": (100 + 6 * t, 200.0), "b": (600 - 6 * t, 210.0)}  # they pass each other
        if 12 <= t < 16:
            people.pop("b")  # b leaves for a moment ...
        if t >= 30:
            people["c"] = (400.0, 500.0)  # ... and c arrives
        script.append(people)
    fake = Scripted(script)
    tracker = PoseTracker(fake, detect_every=10, smooth=False)
    names_by_id: dict[int, set[str]] = {}
    for t in range(40):
        people = tracker.update(t)
        arriving = 16 <= t < 22 or 30 <= t < 32  # a newcomer waits for the next detection
        assert len(people) == len(script[t]) or (arriving and len(people) < len(script[t]))
        for p in people:
            cx = p.landmarks[:, 0].mean()
            name = min(script[t], key=lambda n: abs(script[t][n][0] - cx))
            names_by_id.setdefault(p.id, set()).add(name)
    # one name per id, one id per name: b came back as b, c is new
    assert sorted(map(sorted, names_by_id.values())) == [["a"], ["b"], ["c"]]
    assert fake.calls["detect"] <= 8  # not every frame: first, a loss, newcomers every 10


def test_match_pairs_boxes_by_overlap():
    previous = [np.array([0, 0, 10, 10]), np.array([20, 0, 30, 10])]
    current = [np.array([21, 1, 31, 11]), np.array([1, 0, 11, 10]), np.array([100, 100, 110, 110])]
    assert match(previous, current) == {0: 1, 1: 0}
    assert match([], current) == {}
    assert match(previous[:1], current[2:]) == {}
    assert match(previous[:1], [np.array([12, 0, 22, 10])], max_distance=1.0) == {0: 0}


def test_one_euro_smooths_jitter_and_follows_fast_moves():
    rng = np.random.default_rng(0)
    still = OneEuro()
    noisy = 100 + rng.normal(0, 1.0, 60)
    smoothed = np.array([still(np.array([v]), 1 / 30, 100.0)[0] for v in noisy])
    assert smoothed[10:].std() < 0.65 * noisy[10:].std()
    fast = OneEuro()
    ramp = np.arange(30) * 20.0  # 600 px/s
    out = np.array([fast(np.array([v]), 1 / 30, 100.0)[0] for v in ramp])
    assert np.abs(out[5:] - ramp[5:]).max() < 5.0  # within a quarter of a frame's move


# --- the real models -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def estimator():
    from kinema.core.errors import KinemaError

    try:
        from kinema.vision.pose import PoseEstimator

        return PoseEstimator(threads=2)
    except KinemaError as exc:  # no bundled model, or no LiteRT
        pytest.skip(f"the bundled mediapipe pose models are not usable here: {exc}")


def _davis(name: str, frame: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from kinema.media import open_video

    if not (DAVIS / "videos" / f"{name}.mp4").is_file():
        pytest.skip(f"{DAVIS} is not present")
    with open_video(DAVIS / "videos" / f"{name}.mp4", prefetch=False) as reader:
        image = reader[frame]
    z = np.load(DAVIS / "masks" / f"{name}.npz")
    width = int(z["shape"][2])
    return image, np.unpackbits(z["masks"][frame], axis=-1, count=width).astype(bool)


@pytest.mark.parametrize("clip", ["lucia", "tennis", "breakdance-flare"])
def test_real_keypoints_fall_inside_the_person(estimator, clip):
    image, truth = _davis(clip)
    people = estimator.people(image)
    assert len(people) >= 1
    lm = people[0].landmarks
    visible = lm[lm[:, 3] > 0.5]
    assert len(visible) >= 10
    h, w = truth.shape
    x = np.clip(np.round(visible[:, 0]).astype(int), 0, w - 1)
    y = np.clip(np.round(visible[:, 1]).astype(int), 0, h - 1)
    assert truth[y, x].mean() >= 0.75


@pytest.mark.parametrize("clip", ["bear", "elephant"])
def test_real_frame_without_people_reports_none(estimator, clip):
    image, _ = _davis(clip)
    assert not estimator.has_people(image)
    assert estimator.people(image) == []


def test_real_clip_tracks_the_woman(estimator):
    from kinema.media import open_video

    if not DOG.is_file():
        pytest.skip(f"{DOG} is not present")
    tracker = PoseTracker(estimator)
    with open_video(DOG, prefetch=False) as reader:
        frames = list(reader.frames(0, 4))
    before = estimator.calls["detect"]
    for frame in frames:
        people = tracker.update(frame)
        assert [p.id for p in people] == [0]
    assert estimator.calls["detect"] - before == 1
    op = people[0].openpose()
    nose, neck, r_ankle = op[0], op[1], op[10]
    assert op[[0, 1, 2, 5, 8, 11], 2].min() > 0.5  # nose, neck, shoulders and hips are found
    assert nose[1] < neck[1] < r_ankle[1]  # standing
    assert 200 < neck[0] < 500 and 150 < nose[1] < 350 and r_ankle[1] > 450  # the woman, left


def test_pose_command_writes_openpose_json_and_control_images(estimator, tmp_path):
    if not DOG.is_file():
        pytest.skip(f"{DOG} is not present")
    run = subprocess.run([sys.executable, "-m", "kinema", "pose", str(DOG), "--range", "0:2",
                          "-o", str(tmp_path / "poses.json")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    data = json.loads((tmp_path / "poses.json").read_text())
    assert [f["frame"] for f in data["frames"]] == [0, 1]
    assert (data["canvas_width"], data["canvas_height"]) == (1280, 720)
    keypoints = data["frames"][0]["people"][0]["pose_keypoints_2d"]
    assert len(keypoints) == 54
    run = subprocess.run([sys.executable, "-m", "kinema", "pose", str(DOG), "--range", "3:5",
                          "-o", str(tmp_path / "control")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "control").iterdir()) == ["00003.png", "00004.png"]


def test_pose_command_bad_input_is_one_line(tmp_path):
    env = {**os.environ, "KINEMA_MODELS": str(tmp_path / "models")}
    cases = [([str(tmp_path / "none.mp4"), "-o", str(tmp_path / "p.json")], "none.mp4"),
             ([str(DOG), "-o", str(tmp_path / "p.txt")], "poses.json"),
             ([str(DOG), "-o", str(tmp_path / "p.json")], "kinema models fetch-bundled mediapipe")]
    for args, expected in cases:
        if "none" not in args[0] and not DOG.is_file():
            continue
        run = subprocess.run([sys.executable, "-m", "kinema", "pose", *args], capture_output=True,
                             text=True, env=env)
        lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
        assert run.returncode != 0 and len(lines) == 1 and expected in lines[0], run.stderr
        assert "Traceback" not in run.stderr
