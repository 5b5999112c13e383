"""The pose overlay: the skeletons of the people on the shown frame, in OpenPose's limb colours,
drawn over the viewer (never into the footage).

Poses come from :class:`kinema.app.pose_jobs.FramePoses` on a worker thread of the overlay's
own, one frame at a time, the latest asked for first (scrubbing skips the frames it passed);
each answer is cached by frame, so going back to a frame is instant and the UI thread never
waits on the model (about 45 ms a frame on two cores).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from kinema.app.pose_jobs import DEFAULT_BACKEND, FramePoses, Skeleton, check_pose_models, skeleton
from kinema.core.errors import KinemaError
from kinema.ui.model.session import Session
from kinema.ui.model.transport import Transport

CACHE_FRAMES = 4096
"""Frames whose poses are kept (a few hundred bytes each)."""

Poses = Callable[[int], list[Any]]
"""Frame index to every person's ``(18, 3)`` OpenPose keypoints."""


class PoseOverlay:
    """Whether the overlay is on, and the poses of the frames it was shown.

    ``poses`` makes the estimator (on the worker thread, once): by default the bundled
    ``mediapipe`` models on the session's footage; tests pass a stand-in.
    """

    def __init__(self, session: Session, transport: Transport, *,
                 poses: Callable[[], Poses] | None = None, backend: str = DEFAULT_BACKEND) -> None:
        self.session, self.transport, self.backend = session, transport, backend
        self.on = False
        self._make = poses
        self._cache: OrderedDict[int, tuple[list[Any], Skeleton]] = OrderedDict()
        self._cond = threading.Condition()
        self._wanted: int | None = None  # the frame to do next (the latest asked for)
        self._running = False  # the worker is loading the model or on a frame
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- the toggle ---------------------------------------------------------------------------

    def set(self, on: bool) -> None:
        """Turn the overlay on or off. On checks the models first: when they are missing it
        stays off and raises, naming ``kinema models fetch-bundled mediapipe``."""
        if on and not self.on:
            if self._make is None:
                check_pose_models(self.backend)
            self.on = True
            self.people(self.transport.playhead)  # start on the shown frame at once
        elif not on:
            self.on = False

    def toggle(self) -> None:
        self.set(not self.on)

    # -- poses --------------------------------------------------------------------------------

    def people(self, frame: int) -> list[Any] | None:
        """Every person's OpenPose keypoints ``(18, 3)`` on ``frame``, when known; otherwise
        the worker is asked for them (ahead of any frame asked for before) and this is ``None``.
        Never waits."""
        with self._cond:
            hit = self._cache.get(frame)
            if hit is not None:
                self._cache.move_to_end(frame)
                return hit[0]
            if self.on and not self._closed:
                self._wanted = frame
                if self._thread is None:
                    self._running = True
                    self._thread = threading.Thread(target=self._work, name="pose overlay", daemon=True)
                    self._thread.start()
                self._cond.notify_all()
        return None

    def skeleton(self, frame: int, *, near: int = 0) -> Skeleton | None:
        """What to draw over ``frame`` while the overlay is on: its skeletons, or, while they
        are being found, those of a cached frame at most ``near`` away (playing and scrubbing
        pass a few, so the skeletons do not flicker); ``None`` when there is nothing yet."""
        if not self.on:
            return None
        self.people(frame)  # asks the worker when not known
        with self._cond:
            for other in (frame, *(f for d in range(1, near + 1) for f in (frame - d, frame + d))):
                hit = self._cache.get(other)
                if hit is not None:
                    return hit[1]
        return None

    def cached(self, frame: int) -> bool:
        """Whether the poses of ``frame`` are known."""
        with self._cond:
            return frame in self._cache

    def busy(self) -> bool:
        """Whether the worker is loading the model or finding poses."""
        with self._cond:
            return self._wanted is not None or self._running

    def wait(self, timeout: float = 60.0) -> bool:
        """Wait until the worker is idle (for scripts and tests); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._wanted is None and not self._running, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker (after the frame it is on) and release the footage it reads."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # -- the worker ---------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            poses = self._make() if self._make is not None else \
                FramePoses(self.session.video_path, backend=self.backend)
        except Exception as exc:  # no LiteRT, a damaged model: the overlay goes off, with why
            self._stop(f"pose overlay off: {exc}")
            return
        try:
            while True:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()
                    self._cond.wait_for(lambda: self._wanted is not None or self._closed)
                    if self._closed:
                        self._wanted = None
                        return
                    frame, self._wanted, self._running = self._wanted, None, True
                try:
                    people = list(poses(frame))
                except KinemaError as exc:
                    self.session.note(f"pose on frame {frame}: {exc}", error=True)
                    people = []
                with self._cond:
                    self._cache[frame] = (people, skeleton(people))
                    while len(self._cache) > CACHE_FRAMES:
                        self._cache.popitem(last=False)
        except Exception as exc:
            self._stop(f"pose overlay off: {exc}")
        finally:
            close = getattr(poses, "close", None)
            if close is not None:
                close()

    def _stop(self, why: str) -> None:
        with self._cond:
            self.on = False
            self._wanted, self._running, self._thread = None, False, None
            self._cond.notify_all()
        self.session.note(why, error=True)
