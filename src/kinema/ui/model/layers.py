"""The timeline's video layers: shown or hidden, opacity, blend mode and order, each change a
step of the history."""

from __future__ import annotations

from kinema.core.errors import InvalidArgumentError
from kinema.core.frames import BlendMode
from kinema.document import edits
from kinema.document.model import VideoLayer
from kinema.ui.model.history import EditHistory
from kinema.ui.model.session import Session, writes


class Layers:
    """The project's video layers, bottom first, and the edits the layer panel makes."""

    def __init__(self, session: Session, history: EditHistory) -> None:
        self.session, self.history = session, history

    @property
    def items(self) -> list[VideoLayer]:
        """The layers, bottom first (read-only: change them through the methods here)."""
        return self.session.file.project.timeline.video_layers

    @writes
    def show(self, layer_id: str, visible: bool) -> None:
        """Show or hide a layer."""
        self.history.do(edits.set_layer(layer_id, visible=visible))

    @writes
    def set_blend(self, layer_id: str, mode: BlendMode) -> None:
        """How a layer mixes with those below (one of :data:`kinema.core.frames.BLEND_MODES`)."""
        self.history.do(edits.set_layer(layer_id, blend_mode=mode))

    @writes
    def set_opacity(self, layer_id: str, opacity: float) -> None:
        """A layer's opacity, 0-1 (keyframes it has stay)."""
        transform = self._layer(layer_id).transform
        value = transform.opacity.model_copy(update={"value": opacity})
        self.history.do(edits.set_layer(layer_id, transform=transform.model_copy(update={"opacity": value})))

    @writes
    def move(self, layer_id: str, index: int) -> None:
        """Move a layer to position ``index`` in the stack (0 is the bottom)."""
        self.history.do(edits.move_layer(layer_id, index))

    def _layer(self, layer_id: str) -> VideoLayer:
        for layer in self.items:
            if layer.id == layer_id:
                return layer
        raise InvalidArgumentError(f"no layer {layer_id!r} in the project")
