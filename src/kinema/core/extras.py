"""Import optional dependencies with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from kinema.core.errors import MissingExtraError


def require(module: str, extra: str, *, feature: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``pip install 'kinema[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = feature or module
        raise MissingExtraError(
            f"{what} needs the optional package '{module}' ({exc.name or module} is not installed)",
            hint=f"install it with: pip install 'kinema[{extra}]'",
        ) from exc
