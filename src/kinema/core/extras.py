"""Import optional dependencies with an error that names the extra to install."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from kinema.core.errors import MissingExtraError


def missing_extra(feature: str, package: str, extra: str, *,
                  path: str | os.PathLike[str] | None = None) -> MissingExtraError:
    """The one error for ``feature`` lacking optional ``package``: it names
    ``pip install 'kinema[extra]'``."""
    return MissingExtraError(f"{feature} needs the optional package '{package}'", path=path,
                             hint=f"install it with: pip install 'kinema[{extra}]'")


def require(module: str, extra: str, *, feature: str | None = None) -> ModuleType:
    """Import ``module`` or raise :func:`missing_extra`'s error naming ``pip install 'kinema[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        error = missing_extra(feature or module, exc.name or module, extra)
        raise error from exc
