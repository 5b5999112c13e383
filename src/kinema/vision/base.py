"""What every segmentation backend takes and gives: prompts in, boolean masks out.

A backend is fed frames through a :class:`~kinema.core.frames.FrameSource` and does no I/O
(PySceneDetect's rule for detectors), so the same code serves the CLI, the editor and tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

from kinema.core.errors import InvalidArgumentError
from kinema.core.frames import Frame, FrameSource, Mask

Point = tuple[float, float]
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Prompt:
    """What the user gave for one object on one frame. Coordinates are frame pixels.

    ``points`` are clicks with ``labels`` 1 (on the object) or 0 (not the object); ``box`` is
    ``(x0, y0, x1, y1)``; ``mask`` a boolean ``(H, W)`` array; ``text`` words for a detector.
    """

    frame: int
    object_id: int = 1
    points: tuple[Point, ...] = ()
    labels: tuple[int, ...] = ()
    box: Box | None = None
    mask: Mask | None = field(default=None, compare=False)
    text: str | None = None

    def __post_init__(self) -> None:
        if len(self.points) != len(self.labels):
            raise InvalidArgumentError(f"{len(self.points)} points but {len(self.labels)} labels")
        if any(label not in (0, 1) for label in self.labels):
            raise InvalidArgumentError("point labels are 1 (object) or 0 (background)")
        if not (self.points or self.box is not None or self.mask is not None or self.text):
            raise InvalidArgumentError(f"the prompt for object {self.object_id} on frame "
                                       f"{self.frame} is empty",
                                       hint="give a point, a box, a mask or text")
        if self.object_id < 1 or self.object_id > 255:
            raise InvalidArgumentError(f"object ids are 1..255, got {self.object_id}")
        if self.box is not None and not (self.box[0] < self.box[2] and self.box[1] < self.box[3]):
            raise InvalidArgumentError(f"a box is x0,y0,x1,y1 with x0 < x1 and y0 < y1, got {self.box}")


@dataclass(frozen=True)
class Candidate:
    """One proposed mask for a prompt, with the backend's confidence in [0, 1]."""

    mask: Mask
    score: float


class ImageSegmenter(ABC):
    """Masks for a prompt on a single frame."""

    @abstractmethod
    def segment(self, frame: Frame, prompt: Prompt) -> list[Candidate]:
        """Candidate masks for ``prompt`` on ``frame``, best first."""


class VideoTracker(ABC):
    """Masks that follow prompted objects through a video.

    Prompts may be added on any frame, before or between propagations: a prompt on a frame
    already propagated is a correction and changes the result from that frame on.
    """

    def __init__(self, frames: FrameSource) -> None:
        self.frames = frames

    @abstractmethod
    def add_prompt(self, prompt: Prompt) -> dict[int, Mask]:
        """Take ``prompt`` and return the masks, by object id, on its frame (instant feedback)."""

    @abstractmethod
    def propagate(self, start: int, stop: int | None = None, *,
                  reverse: bool = False) -> Iterator[tuple[int, dict[int, Mask]]]:
        """Track every prompted object from frame ``start`` on (``reverse``: back towards 0),
        up to ``stop`` (exclusive; default the end, or -1 going back), yielding
        ``(frame, masks by object id)`` as each frame is done. ``start`` should hold a prompt
        or an already tracked mask."""
