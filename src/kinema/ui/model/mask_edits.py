"""One frame of a mask track as it was before an edit or is after it, kept for the history."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kinema.core.frames import Mask
from kinema.document.masktrack import FrameState, MaskTrackStore


@dataclass(frozen=True)
class FrameMask:
    """A frame's mask, bit-packed (an eighth of a ``bool`` mask: the history's 500 steps of
    1080p frames, before and after, stay near 260 MB), or ``None``; and the frame's state."""

    bits: np.ndarray | None
    state: FrameState

    @classmethod
    def of(cls, mask: Mask, state: FrameState) -> FrameMask:
        """``mask`` with ``state``."""
        return cls(np.packbits(mask), state)

    @classmethod
    def read(cls, masks: MaskTrackStore, index: int) -> FrameMask:
        """Frame ``index`` of ``masks`` as it is now."""
        mask = masks.read(index)
        return cls(None if mask is None else np.packbits(mask), masks.state(index))

    def write(self, masks: MaskTrackStore, index: int) -> None:
        """Make frame ``index`` of ``masks`` this."""
        if self.bits is None:
            masks.clear(index)
            return
        mask = np.unpackbits(self.bits, count=masks.width * masks.height)
        masks.write(index, mask.reshape(masks.height, masks.width).astype(bool), self.state)
