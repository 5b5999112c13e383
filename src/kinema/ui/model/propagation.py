"""Propagation: the active object's mask carried through the shot as a background job."""

from __future__ import annotations

from kinema.core.errors import InvalidArgumentError
from kinema.core.jobs import Job, Progress, Steps
from kinema.document.masktrack import FrameState
from kinema.ui.model.jobs import Jobs
from kinema.ui.model.objects import Objects
from kinema.ui.model.session import Session, writes
from kinema.ui.model.transport import Transport
from kinema.vision.base import Prompt


class Propagation:
    """Tracks the active object from the playhead, its keyframes used as corrections."""

    def __init__(self, session: Session, transport: Transport, objects: Objects, jobs: Jobs) -> None:
        self.session, self.transport, self.objects, self.jobs = session, transport, objects, jobs

    @writes
    def propagate(self, direction: str = "forward", count: int | None = None) -> Job:
        """Carry the active object's mask from the playhead forward or backward (``count``
        frames, default to the in/out point) as a background job; keyframes on the way are
        kept and used as corrections; the lane fills in as frames arrive. Propagated frames are
        not steps of the history: propagating again replaces them."""
        obj = self.objects.get(self.objects.active)
        start, transport = self.transport.playhead, self.transport
        if obj.store.read(start) is None:
            raise InvalidArgumentError(f"frame {start} has no mask for {obj.name}",
                                       hint="click the object on this frame first")
        if direction not in ("forward", "backward"):
            raise InvalidArgumentError(f"direction is forward or backward, got {direction!r}")
        reverse = direction == "backward"
        if reverse:
            stop = transport.in_point - 1 if count is None else max(transport.in_point - 1, start - count - 1)
        else:
            stop = transport.out_point if count is None else min(transport.out_point, start + count + 1)
        keyframes = [k for k in obj.store.keyframes()
                     if (stop < k <= start if reverse else start <= k < stop)]
        session, masks = self.session, obj.store

        def steps() -> Steps[None]:
            from kinema.app.segment_jobs import make_tracker
            from kinema.media import open_video

            with open_video(session.video_path) as frames:  # the job's own reader: no shared decoder
                tracker = make_tracker(session.backend, frames, session.choice)
                for k in keyframes:
                    tracker.add_prompt(Prompt(frame=k, mask=masks.read(k)))
                total = abs(stop - start)
                for done, (index, tracked) in enumerate(tracker.propagate(start, stop, reverse=reverse), 1):
                    if index not in keyframes:
                        mask = tracked.get(1)
                        if mask is not None:
                            masks.write(index, mask, FrameState.PROPAGATED)
                    yield Progress(done, total)

        return self.jobs.start(f"propagate {obj.name} {direction}", steps,
                               on_done=lambda: session.note(f"{obj.name}: propagated {direction}"))
