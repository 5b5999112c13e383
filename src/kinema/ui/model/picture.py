"""What the viewer shows: the footage at the playhead (from the proxy while scrubbing or
playing, once built), or every visible layer composited as a render would."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kinema.core.frames import Frame
from kinema.document.edits import History
from kinema.ui.model.jobs import Jobs
from kinema.ui.model.session import Session
from kinema.ui.model.transport import Transport

if TYPE_CHECKING:
    from kinema.app.evaluate import FrameEvaluator
    from kinema.core.jobs import Job
    from kinema.media import VideoReader


class Picture:
    """The viewer's picture at the transport's playhead."""

    def __init__(self, session: Session, transport: Transport, jobs: Jobs) -> None:
        self.session, self.transport, self.jobs = session, transport, jobs
        self._proxy: VideoReader | None = None
        self._evaluator: tuple[History, int, FrameEvaluator] | None = None  # for that revision

    def shown(self, *, fast: bool = False) -> Frame:
        """What the viewer shows: the footage, or, when the timeline has more than that one
        visible layer, every layer composited as a render would (the footage at full size)."""
        layers = [layer for layer in self.session.file.project.timeline.video_layers if layer.visible]
        simple = (len(layers) == 1 and layers[0].mask is None and len(layers[0].items) == 1
                  and layers[0].blend_mode == "normal" and layers[0].transform.opacity.value == 1
                  and not layers[0].transform.opacity.keyframes)
        if simple or not layers:
            return self.frame(fast=fast)
        from kinema.app.evaluate import FrameEvaluator

        history = self.session.file.history
        if self._evaluator is None or self._evaluator[:2] != (history, history.revision):
            self._close_evaluator()
            project = self.session.file.project.model_copy(deep=True)
            evaluator = FrameEvaluator(project, self.session.folder, partial_styles=True)
            self._evaluator = (history, history.revision, evaluator)
        return self._evaluator[2].frame(self.transport.playhead)

    def frame(self, *, fast: bool = False) -> Frame:
        """The footage at the playhead (RGB). ``fast`` (while scrubbing or playing) takes it
        from the small all-intra proxy when one is ready: smaller, same picture."""
        proxy = self._proxy
        if fast and proxy is not None:
            return proxy[self.transport.playhead]
        return self.session.reader[self.transport.playhead]

    def use_proxy(self) -> Job | None:
        """Build (or find) the proxy, as a background job when it must be built (returned);
        fast frames use it once it is ready. Footage at or under the proxy's size gains nothing
        and gets none."""
        from kinema.media import open_video
        from kinema.media.proxy import PROXY_HEIGHT, build_proxy, find_proxy

        video = self.session.video_path
        if self.session.size[1] <= PROXY_HEIGHT:
            return None

        def ready() -> None:
            self._proxy = open_video(video, proxy=True)

        if find_proxy(video) is not None:
            ready()
            return None
        return self.jobs.start("proxy", lambda: build_proxy(video), on_done=ready)

    def close(self) -> None:
        """Release the proxy and the compositor."""
        if self._proxy is not None:
            self._proxy.close()
        self._close_evaluator()

    def _close_evaluator(self) -> None:
        if self._evaluator is not None:
            self._evaluator[2].close()
            self._evaluator = None
