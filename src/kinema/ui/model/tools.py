"""Tools on the current frame: point and box prompts, words, the brush, grow and feather.

Each sets the active object's mask on the playhead's frame as a keyframe, as one step of the
history (see :class:`~kinema.ui.model.mask_edits.FrameMask`): undo puts back the frame, and
the prompts that made it, as they were.
"""

from __future__ import annotations

import numpy as np

from kinema.app.segment_jobs import ModelChoice, click_backend, make_segmenter
from kinema.core.errors import InvalidArgumentError
from kinema.core.frames import Frame, Mask
from kinema.document.edits import Change
from kinema.document.masktrack import FrameState
from kinema.ui.model.history import EditHistory
from kinema.ui.model.mask_edits import FrameMask
from kinema.ui.model.objects import Objects, ObjectView
from kinema.ui.model.session import Session, writes
from kinema.ui.model.transport import Transport
from kinema.vision.base import Prompt

TOOLS = ("point", "box", "brush")
"""What a click or drag in the viewer does; words (:meth:`Tools.text`) need no tool."""


class Tools:
    """Prompts and strokes on the playhead's frame of the active object; clicks on the same
    frame add up."""

    def __init__(self, session: Session, transport: Transport, objects: Objects,
                 history: EditHistory) -> None:
        self.session, self.transport, self.objects, self.history = session, transport, objects, history
        self.tool = "point"
        self._prompts: dict[tuple[str, int], Prompt] = {}  # what made each keyframe, to add to
        self._segmenter = None

    def choose(self, tool: str) -> None:
        """Pick the viewer's tool (one of :data:`TOOLS`)."""
        if tool not in TOOLS:
            raise InvalidArgumentError(f"unknown tool {tool!r}", hint=f"use one of {', '.join(TOOLS)}")
        self.tool = tool

    @writes
    def click(self, x: float, y: float, *, positive: bool = True) -> Mask:
        """A click on the object (``positive``) or off it, on the current frame: the mask
        appears at once. Clicks on the same frame add up."""
        return self._prompt(Prompt(frame=self.transport.playhead, object_id=1, points=((x, y),),
                                   labels=(1 if positive else 0,)))

    @writes
    def box(self, x0: float, y0: float, x1: float, y1: float) -> Mask:
        """A box around the object on the current frame."""
        return self._prompt(Prompt(frame=self.transport.playhead, object_id=1,
                                   box=(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))))

    @writes
    def text(self, words: str) -> Mask:
        """Words ("person"): the detector's best box on the current frame becomes the prompt."""
        from kinema.app.segment_jobs import ground_text

        here = self.transport.playhead
        (boxed,) = ground_text([self._frame()] * (here + 1), [Prompt(frame=here, text=words)],
                               ModelChoice(**{**self.session.choice.__dict__, "max_objects": 1}))
        return self.box(*boxed.box)  # type: ignore[misc]

    @writes
    def brush(self, x: float, y: float, radius: float, *, erase: bool = False) -> Mask:
        """Paint (or erase) a disc of the active object's mask on the current frame."""
        import cv2

        obj = self.objects.active_or_new()
        current = obj.store.read(self.transport.playhead)
        width, height = self.session.size
        canvas = (np.zeros((height, width), np.uint8) if current is None
                  else current.astype(np.uint8))
        cv2.circle(canvas, (int(round(x)), int(round(y))), max(1, int(round(radius))), 0 if erase else 1, -1)
        return self._keyframe(obj, canvas.astype(bool), "Erase" if erase else "Paint")

    @writes
    def adjust(self, *, grow: float = 0.0, feather: float = 0.0) -> Mask:
        """Grow (or shrink) the active object's mask on the current frame; ``feather`` softens
        then re-thresholds it (rounds corners, removes specks)."""
        from kinema.render.mattes import matte_from_mask

        obj = self.objects.get(self.objects.active)
        current = obj.store.read(self.transport.playhead)
        if current is None:
            raise InvalidArgumentError("this frame has no mask to adjust")
        mask = matte_from_mask(current, grow=grow, feather=feather) > 0.5
        return self._keyframe(obj, mask, "Adjust")

    def _prompt(self, prompt: Prompt) -> Mask:
        obj = self.objects.active_or_new()
        before = self._prompts.get((obj.track_id, prompt.frame))
        merged = prompt if before is None else Prompt(
            frame=prompt.frame, object_id=1, points=before.points + prompt.points,
            labels=before.labels + prompt.labels,
            box=prompt.box if prompt.box is not None else before.box)
        return self._keyframe(obj, self._segment(self._frame(), merged), "Segment", merged)

    def _keyframe(self, obj: ObjectView, mask: Mask, verb: str, prompt: Prompt | None = None) -> Mask:
        """Set ``obj``'s mask on the playhead's frame as a keyframe, one step of the history;
        ``prompt`` made it (default: the frame keeps the prompt it had)."""
        track, index = obj.track_id, self.transport.playhead
        key = (track, index)
        before = (FrameMask.read(obj.store, index), self._prompts.get(key))
        after = (FrameMask.of(mask, FrameState.KEYFRAME), before[1] if prompt is None else prompt)

        def put(frame: FrameMask, made_by: Prompt | None) -> None:
            frame.write(self.objects.get(track).store, index)
            if made_by is None:
                self._prompts.pop(key, None)
            else:
                self._prompts[key] = made_by

        self.history.do(Change(f"{verb} {obj.name} at frame {index}",
                               lambda: put(*after), lambda: put(*before)))
        return mask

    def _frame(self) -> Frame:
        return self.session.reader[self.transport.playhead]

    def _segment(self, frame: Frame, prompt: Prompt) -> Mask:
        if self._segmenter is None:  # loaded on the first click, kept for the next ones
            self._segmenter = make_segmenter(click_backend(self.session.backend), self.session.choice)
        return self._segmenter.segment(frame, prompt)[0].mask
