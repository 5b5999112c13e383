"""Which device and dtype run a model: CUDA, Apple MPS or CPU; half precision on GPUs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from kinema.core.errors import InvalidArgumentError
from kinema.core.extras import require

if TYPE_CHECKING:
    import torch

DEVICES = ("cuda", "mps", "cpu")
DTYPES = ("float32", "float16", "bfloat16")


def import_torch():
    """torch, or a one-line error naming the extra to install."""
    return require("torch", "ml", feature="this")


def quiet_diffusers(feature: str) -> tuple[Any, Any]:
    """torch and diffusers for ``feature`` (a one-line error naming the extra when missing),
    with diffusers' and transformers' own progress bars and advice silenced: our callers show
    progress and one-line errors, which those would interleave with."""
    torch = require("torch", "ml", feature=feature)
    diffusers = require("diffusers", "ml", feature=feature)
    for library in (diffusers, require("transformers", "ml", feature=feature)):
        library.utils.logging.disable_progress_bar()
        library.utils.logging.set_verbosity_error()
    return torch, diffusers


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside, torch draws from ``seed``; the caller's random state is left as it was (tiny
    models are built this way, the same weights every time)."""
    torch = import_torch()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def choose_device(force: str | None = None) -> torch.device:
    """``force`` or ``$KINEMA_DEVICE`` if set, else CUDA, then MPS, then CPU."""
    torch = import_torch()
    wanted = force or os.environ.get("KINEMA_DEVICE")
    if wanted:
        kind = wanted.split(":")[0]
        if kind not in DEVICES:
            raise InvalidArgumentError(f"unknown device {wanted!r}", hint=f"use one of {DEVICES}")
        if kind == "cuda" and not torch.cuda.is_available():
            raise InvalidArgumentError("CUDA was asked for but no CUDA device is available",
                                       hint="leave the device out to use what this machine has")
        if kind == "mps" and not torch.backends.mps.is_available():
            raise InvalidArgumentError("MPS was asked for but is not available here")
        return torch.device(wanted)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def placement(device: Any = None, dtype: Any = None) -> tuple[torch.device, torch.dtype]:
    """Where a model runs and in what precision: ``device`` and ``dtype`` as given (names or
    torch objects), else what :func:`choose_device` and :func:`choose_dtype` pick."""
    torch = import_torch()
    dev = choose_device(str(device) if device is not None else None)
    if isinstance(dtype, torch.dtype):
        return dev, dtype
    return dev, choose_dtype(dev, str(dtype).removeprefix("torch.") if dtype is not None else None)


def choose_dtype(device: torch.device, force: str | None = None) -> torch.dtype:
    """``force`` or ``$KINEMA_DTYPE`` if set; else bfloat16 on GPUs that have it, float16 on
    other GPUs and MPS, float32 on CPU."""
    torch = import_torch()
    wanted = force or os.environ.get("KINEMA_DTYPE")
    if wanted:
        if wanted not in DTYPES:
            raise InvalidArgumentError(f"unknown dtype {wanted!r}", hint=f"use one of {DTYPES}")
        return getattr(torch, wanted)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32
