"""Body pose through a clip: every person's keypoints, as OpenPose JSON or control images.

:func:`estimate_poses` opens a video, tracks the people in a range of its frames with a
``pose`` backend (MediaPipe BlazePose by default, from the bundled models) and writes either
one JSON file in OpenPose's keypoint format (``people[].pose_keypoints_2d``: x, y, confidence
triples of the 18 COCO body keypoints, per frame) or a folder of OpenPose control images
(``00000.png`` named by source frame) for ControlNet. It yields progress after each frame,
and records its recipe beside the output (``OUT.provenance.json``) and in a project if given.

For the editor's pose overlay, :class:`FramePoses` answers single frames in any order,
:func:`skeleton` gives the OpenPose drawing as shapes to draw over the footage, and
:func:`check_pose_models` says at once whether the bundled models are there.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinema.core.errors import InvalidArgumentError
from kinema.core.frames import frame_range
from kinema.core.jobs import Progress, Steps

DEFAULT_BACKEND = "mediapipe"


@dataclass(frozen=True)
class PoseResult:
    """What :func:`estimate_poses` wrote: ``frames`` frames, ``people`` the most seen in one."""

    output: Path
    frames: int
    people: int


def output_kind(output: str | os.PathLike[str]) -> str:
    """``"json"`` for ``.json``, ``"images"`` for a folder (no extension); others are errors."""
    suffix = Path(output).suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix == "" or Path(output).is_dir():
        return "images"
    raise InvalidArgumentError(f"cannot write poses as {suffix}", path=output,
                               hint="use -o poses.json (OpenPose keypoints) or a folder (control images)")


def estimate_poses(video: str | os.PathLike[str], output: str | os.PathLike[str], *,
                   start: int = 0, stop: int | None = None, backend: str = DEFAULT_BACKEND,
                   overwrite: bool = False, detect_every: int = 10, smooth: bool = True,
                   project: str | os.PathLike[str] | None = None) -> Steps[PoseResult]:
    """Track the people in frames ``[start, stop)`` of ``video`` and write ``output``.

    Everything is checked before the first frame: the output's kind, that it may be written
    and is not the input, the video and range, the project, and the model (a missing bundled
    model is an error naming ``kinema models fetch-bundled mediapipe``). The
    :class:`~kinema.document.recipes.PoseRecipe` goes to ``OUT.provenance.json`` beside the
    output (beside the folder of control images) and, with ``project``, into its recipes
    (see :mod:`kinema.app.operation_records`).
    """
    from kinema.app import operation_records as records
    from kinema.core import atomic
    from kinema.document.recipes import PoseRecipe
    from kinema.media import open_video
    from kinema.models import backends
    from kinema.vision.pose import PoseTracker

    target = Path(output)
    kind = output_kind(target)
    atomic.check_can_write(target, overwrite, folder=kind == "images")
    atomic.check_not_input(target, [video, project])
    records.check_project(project)
    with open_video(video, prefetch=False) as reader:
        begin, end = frame_range(len(reader), start, stop, path=video)
        estimator = backends.create("pose", backend)
        models = pose_models(backend)
        sources = [records.Source.of(video)]
        tracker = PoseTracker(estimator, fps=float(reader.fps), detect_every=detect_every,
                              smooth=smooth)
        frames = reader.frames(begin, end)
        if kind == "json":
            result = yield from _json(video, target, reader, frames, tracker, begin, end, overwrite)
        else:
            result = yield from _images(target, reader, frames, tracker, begin, end, overwrite)
    recipe = PoseRecipe(id=f"pose-{target.name}", backend=backend, start=begin, end=end,
                        detect_every=detect_every, smooth=smooth, **models,
                        inputs=[s.as_input() for s in sources])
    records.write_record(target, recipe, sources)
    if project is not None:
        records.store_recipe(project, recipe, sources)
    return result


BUNDLED_POSE = {"mediapipe": ("mediapipe", "pose_landmark_full.tflite", "pose_detection.tflite")}
"""The bundled files each built-in pose backend loads: bundle, landmark model, detector."""


def pose_models(backend: str) -> dict[str, Any]:
    """What a pose recipe names for ``backend``: its landmark ``model`` and ``detector`` (the
    bundled files, each checked) and ``device`` (LiteRT runs on the CPU); nothing for a
    backend kinema does not ship."""
    from kinema.app.operation_records import bundled_model

    if backend not in BUNDLED_POSE:
        return {}
    bundle, landmarks, detector = BUNDLED_POSE[backend]
    return {"model": bundled_model(bundle, landmarks), "detector": bundled_model(bundle, detector),
            "device": "cpu"}


def _json(video: str | os.PathLike[str], target: Path, reader: Any, frames: Any, tracker: Any,
          begin: int, end: int, overwrite: bool) -> Steps[PoseResult]:
    from kinema.core.atomic import atomic_write_bytes
    from kinema.vision.pose import OPENPOSE_NAMES, openpose_json

    width, height = reader.size
    out, most = [], 0
    for k, frame in enumerate(frames):
        people = tracker.update(frame)
        most = max(most, len(people))
        out.append({"frame": begin + k, "people": openpose_json(people)})
        yield Progress(k + 1, end - begin)
    data = {"version": 1.3, "source": Path(video).name, "fps": str(reader.fps),
            "canvas_width": width, "canvas_height": height, "keypoints": list(OPENPOSE_NAMES),
            "frames": out}
    atomic_write_bytes(target, json.dumps(data, separators=(",", ":")).encode(), overwrite=overwrite)
    return PoseResult(target, end - begin, most)


def _images(target: Path, reader: Any, frames: Any, tracker: Any, begin: int, end: int,
            overwrite: bool) -> Steps[PoseResult]:
    from kinema.core import atomic
    from kinema.media.image import encode_png
    from kinema.vision.pose import draw_openpose

    temp = atomic.temp_path_for(target)
    most = 0
    try:
        with atomic.naming_errors(target):
            temp.mkdir()
        for k, frame in enumerate(frames):
            people = tracker.update(frame)
            most = max(most, len(people))
            image = draw_openpose([p.openpose() for p in people], reader.size)
            with atomic.naming_errors(target):
                (temp / f"{begin + k:05d}.png").write_bytes(encode_png(image))
            yield Progress(k + 1, end - begin)
        with atomic.naming_errors(target):
            atomic.commit_frames(temp, target, overwrite)
    except BaseException:
        atomic.discard(temp)
        raise
    return PoseResult(target, end - begin, most)


# --- single frames, for the editor's overlay -----------------------------------------------

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Skeleton:
    """Every person's OpenPose drawing as shapes in frame pixels, for a viewer to draw over the
    footage: ``limbs`` ``(x0, y0, x1, y1, colour)`` in OpenPose's order and colours, then
    ``joints`` ``(x, y, colour)``, each keypoint in its colour."""

    limbs: tuple[tuple[float, float, float, float, RGB], ...]
    joints: tuple[tuple[float, float, RGB], ...]


def skeleton(people: list[Any]) -> Skeleton:
    """The shapes of :func:`kinema.vision.pose.draw_openpose` for ``people`` (``(18, 3)``
    OpenPose keypoints each): a keypoint of confidence 0 is left out, and so are its limbs."""
    from kinema.vision.pose import OPENPOSE_COLOURS, OPENPOSE_LIMBS

    limbs = tuple((float(kp[a, 0]), float(kp[a, 1]), float(kp[b, 0]), float(kp[b, 1]), OPENPOSE_COLOURS[k])
                  for k, (a, b) in enumerate(OPENPOSE_LIMBS) for kp in people
                  if kp[a, 2] > 0 and kp[b, 2] > 0)
    joints = tuple((float(kp[k, 0]), float(kp[k, 1]), OPENPOSE_COLOURS[k])
                   for k in range(len(OPENPOSE_COLOURS)) for kp in people if kp[k, 2] > 0)
    return Skeleton(limbs, joints)


def check_pose_models(backend: str = DEFAULT_BACKEND) -> None:
    """Raise a :class:`~kinema.core.errors.ModelNotFoundError` naming ``kinema models
    fetch-bundled mediapipe`` when the bundled pose models are missing or damaged (quick: each
    file is hashed once per process); other backends are checked when made."""
    if backend in BUNDLED_POSE:
        from kinema.models.bundled import model_file

        bundle, *members = BUNDLED_POSE[backend]
        for member in members:
            model_file(bundle, member)


class FramePoses:
    """Poses on single frames of one video, in any order (detection and landmarks on each, no
    tracking): ``poses(i)`` is every person's OpenPose keypoints ``(18, 3)`` on frame ``i``.
    It reads the video itself, so it may run on a worker thread; :meth:`close` releases it."""

    def __init__(self, video: str | os.PathLike[str], *, backend: str = DEFAULT_BACKEND) -> None:
        from kinema.media import open_video
        from kinema.models import backends

        self._estimator = backends.create("pose", backend)
        self._reader = open_video(video, prefetch=False)

    def __call__(self, index: int) -> list[Any]:
        return [p.openpose() for p in self._estimator.people(self._reader[index])]

    def close(self) -> None:
        self._reader.close()
