"""The interpolation, upscaling and text-to-video backends kinema ships: bidirectional flow,
RIFE and a cross-fade; Real-ESRGAN (two models) and Lanczos; Wan 2.1 T2V.

Importing this module is cheap: each factory imports its implementation when it is called.
Factories (see ``kinema.models.backends``):

- ``interpolate``: ``factory(**options)`` -> an object with ``interpolate(a, b, t) -> frame``
- ``upscale``: ``factory(scale=4, **options)`` -> an object with ``upscale(frame) -> frame``
- ``t2v``: ``factory(**options)`` -> an object with ``generate(ClipRequest, on_step) -> frames``
  (``kinema.generate.wan.ClipRequest``), ``device`` and ``dtype``
"""

from __future__ import annotations

from typing import Any

from kinema.models.backends import Backend, register


def flow(*, model: Any = None, device: Any = None, dtype: Any = None, **options: Any) -> Any:
    """DIS optical flow both ways, a motion chosen per pixel, bicubic detail (OpenCV, no weights)."""
    from kinema.generate.flow_interp import FlowInterpolator

    return FlowInterpolator(**options)


def rife(*, model: Any = None, device: Any = None, dtype: Any = None, **options: Any) -> Any:
    """RIFE v3.9 on torch; ``model`` a ``flownet.pkl``, a state dict or ``None`` (bundled)."""
    from kinema.generate.rife import Rife

    return Rife(model, device=device, dtype=dtype, **options)


def cross_fade(*, model: Any = None, **_options: Any) -> Any:
    """The plain cross-fade between the two frames (no weights)."""
    from kinema.generate.rife import Blend

    return Blend()


def _realesrgan(name: str) -> Any:
    def factory(scale: int = 4, *, model: Any = None, **options: Any) -> Any:
        from kinema.generate.upscale import RealEsrgan

        options.pop("device", None)  # ncnn runs on the CPU here (Vulkan off)
        options.pop("dtype", None)
        return RealEsrgan(name, scale, folder=model, **options)

    factory.__doc__ = f"Real-ESRGAN {name} through ncnn; ``model`` a folder or ``None`` (bundled)."
    return factory


def lanczos(scale: int = 4, **_options: Any) -> Any:
    """OpenCV's Lanczos resize (no weights)."""
    from kinema.generate.upscale import Lanczos

    return Lanczos(scale)


def wan_t2v(*, model: Any = None, device: Any = None, dtype: Any = None) -> Any:
    """Wan 2.1 text-to-video through diffusers; ``model`` a ``WanPipeline`` folder, a registry
    name of the ``text-to-video`` task or ``None`` (``wan2.1-t2v-1.3b``)."""
    from kinema.generate.wan import TextToVideo
    from kinema.models.registry import resolve

    return TextToVideo(resolve(model, task="text-to-video"), device=device, dtype=dtype)


register(Backend("interpolate", "flow", "DIS optical flow (inverted for the backward direction), "
                 "per pixel the best of three motion guesses, bicubic detail where the warps "
                 "agree; no weights, OpenCV (the default)", flow))
register(Backend("interpolate", "rife", "RIFE v3.9 optical-flow interpolation; bundled, torch",
                 rife, extra="ml"))
register(Backend("interpolate", "blend", "a plain cross-fade; no weights", cross_fade))
register(Backend("upscale", "x4plus", "Real-ESRGAN x4plus (photographs); bundled, ncnn CPU",
                 _realesrgan("x4plus"), extra="bundled"))
register(Backend("upscale", "animevideov3", "Real-ESRGAN animevideov3 (animation, fast); bundled, ncnn CPU",
                 _realesrgan("animevideov3"), extra="bundled"))
register(Backend("upscale", "lanczos", "Lanczos resampling; no weights", lanczos))
register(Backend("t2v", "wan", "Wan 2.1 text-to-video through diffusers (WanPipeline)", wan_t2v,
                 extra="ml", model_task="text-to-video"))
