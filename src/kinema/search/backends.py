"""The search backends kinema ships: CLIP embeddings, Silero speech detection.

Importing this module is cheap: the factory imports its implementation when it is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kinema.models.backends import Backend, register

if TYPE_CHECKING:
    from kinema.search.embed import Embedder
    from kinema.search.speech import SileroVad


def clip_embedder(*, model: Any = None, device: Any = None, dtype: Any = None) -> Embedder:
    """CLIP image and text embeddings."""
    from kinema.search.embed import ClipEmbedder

    return ClipEmbedder(model, device=device, dtype=dtype)


register(Backend("embed", "clip", "CLIP: images and words in one space", clip_embedder,
                 extra="ml", model_task="embed"))


def silero_vad(*, model: Any = None, **_options: Any) -> SileroVad:
    """Silero VAD on onnxruntime; ``model`` an ``.onnx`` path or ``None`` (bundled)."""
    from kinema.search.speech import SileroVad

    return SileroVad(model)


register(Backend("speech", "silero", "Silero VAD: speech spans; bundled, onnxruntime CPU", silero_vad,
                 extra="bundled"))
