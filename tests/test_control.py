"""Control images for ControlNets: canny as OpenCV makes it, depth normalised near-bright,
OpenPose skeletons where the bundled pose model finds people (none where it finds no one), the
--control option, and the tiny Depth Anything."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kinema.core.errors import InvalidArgumentError
from kinema.generate.control import ControlSpec, canny_image, depth_image, parse_controls

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DOG = SHARED / "media" / "dog.mp4"
DAVIS = SHARED / "davis-train" / "videos"


def pattern() -> np.ndarray:
    """A bright square and a red disc on grey."""
    import cv2

    image = np.full((96, 128, 3), 60, np.uint8)
    image[20:60, 16:56] = 230
    cv2.circle(image, (90, 50), 20, (200, 30, 30), thickness=-1)
    return image


def test_canny_image_is_cv2_canny_in_three_channels() -> None:
    import cv2

    image = pattern()
    for low, high in [(100, 200), (20, 60)]:
        edges = canny_image(image, low, high)
        expected = cv2.Canny(image, low, high)
        assert edges.shape == (96, 128, 3) and edges.dtype == np.uint8
        assert all(np.array_equal(edges[..., c], expected) for c in range(3))
    edges = canny_image(image)[..., 0]
    assert set(np.unique(edges)) == {0, 255}
    assert edges[20:60, 15:17].any() and not edges[30:50, 26:46].any()  # the square's edge, not its inside
    with pytest.raises(InvalidArgumentError, match="LOW <= HIGH"):
        canny_image(image, 200, 100)


def test_depth_image_is_normalised_with_the_nearest_brightest() -> None:
    depth = np.tile(np.linspace(2.0, 10.0, 50, dtype=np.float32), (20, 1))
    image = depth_image(depth)
    assert image.shape == (20, 50, 3) and image.dtype == np.uint8
    assert np.array_equal(image[..., 0], image[..., 2])
    assert image[0, 0, 0] == 0 and image[0, -1, 0] == 255  # larger relative depth is nearer
    assert np.all(np.diff(image[0, :, 0].astype(int)) >= 0)
    assert not depth_image(np.full((4, 4), 3.0)).any()


def test_parse_controls_weights_and_ranges() -> None:
    assert parse_controls("canny=0.6,pose=1.0@0-0.8, depth") == [
        ControlSpec("canny", 0.6), ControlSpec("pose", 1.0, 0.0, 0.8), ControlSpec("depth", 1.0)]
    assert parse_controls(None) == [] and parse_controls("") == []
    for text, message in [("edges=1", "unknown control"), ("canny=1,canny=0.5", "more than once"),
                          ("pose=x", "cannot read"), ("pose=1@0.5", "cannot read"),
                          ("pose=1@0.8-0.2", "acts over"), ("depth=-1", "negative")]:
        with pytest.raises(InvalidArgumentError, match=message):
            parse_controls(text)


def test_tiny_depth_estimator_gives_a_deterministic_map(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from kinema.models.tiny import build_tiny
    from kinema.vision.depth import DepthEstimator

    estimator = DepthEstimator(build_tiny("depth", tmp_path / "depth"), device="cpu")
    frame = pattern()
    depth = estimator.depth(frame)
    assert depth.shape == (96, 128) and depth.dtype == np.float32
    assert np.array_equal(depth, estimator.depth(frame))
    assert depth_image(depth).shape == (96, 128, 3)


@pytest.fixture(scope="module")
def estimator():
    from kinema.core.errors import KinemaError

    try:
        from kinema.vision.pose import PoseEstimator

        return PoseEstimator(threads=2)
    except KinemaError as exc:  # no bundled model, or no LiteRT
        pytest.skip(f"the bundled mediapipe pose models are not usable here: {exc}")


def first_frame(path: Path) -> np.ndarray:
    from kinema.media import open_video

    if not path.is_file():
        pytest.skip(f"{path} is not present")
    with open_video(path, prefetch=False) as reader:
        return reader[0]


def test_pose_control_has_its_joints_where_the_pose_model_found_them(estimator) -> None:
    from kinema.app.restyle_jobs import pose_control
    from kinema.vision.pose import OPENPOSE_COLOURS

    frame = first_frame(DOG)
    people = [p.openpose() for p in estimator.people(frame)]
    image = pose_control(estimator, frame)
    assert people and image is not None and image.shape == frame.shape
    joints = [(k, kp[k]) for kp in people for k in range(len(kp)) if kp[k, 2] > 0]
    assert len(joints) >= 10
    own = [tuple(image[int(y), int(x)]) == OPENPOSE_COLOURS[k] for k, (x, y, _c) in joints]
    assert np.mean(own) >= 0.7  # a disc of its colour on each joint (a later one may cover it)
    assert all(image[int(y), int(x)].any() for _k, (x, y, _c) in joints)
    yy, xx = np.mgrid[0:frame.shape[0], 0:frame.shape[1]]
    near = np.zeros(frame.shape[:2], bool)
    for kp in people:
        x0, y0 = kp[kp[:, 2] > 0, :2].min(0) - 12
        x1, y1 = kp[kp[:, 2] > 0, :2].max(0) + 12
        near |= (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)
    assert not image[~near].any()  # black away from the people


@pytest.mark.parametrize("clip", ["bear", "elephant"])
def test_a_frame_without_people_gets_no_pose_control(estimator, clip: str) -> None:
    from kinema.app.restyle_jobs import pose_control

    assert pose_control(estimator, first_frame(DAVIS / f"{clip}.mp4")) is None
