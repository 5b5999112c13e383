"""Bring project files from older schema versions to the current one, one step at a time."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

from kinema.core.errors import InvalidArgumentError
from kinema.core.timebase import snap_rate, to_fraction

Data = dict[str, Any]


def _v1_to_v2(data: Data) -> Data:
    """v1 (the prototype): ``version``, a media *list* with float ``frame_rate``.
    v2: ``schema_version``, media keyed by id, rates as exact fractions."""
    out = {k: v for k, v in data.items() if k not in ("version", "media")}
    out["schema_version"] = 2
    media = {}
    for ref in data.get("media", []):
        ref = dict(ref)
        ref["rate"] = str(_exact_rate(ref.pop("frame_rate")))
        media[ref["id"]] = ref
    out["media"] = media
    timeline = dict(out.get("timeline", {}))
    if "rate" in timeline:
        timeline["rate"] = str(_exact_rate(timeline["rate"]))
    out["timeline"] = timeline
    return out


def _v2_to_v3(data: Data) -> Data:
    """v3: mask tracks may name the recipe that made them (``recipe_id``, absent before)."""
    return {**data, "schema_version": 3}


def _v3_to_v4(data: Data) -> Data:
    """v4: typed recipes. A v3 recipe (``operation`` and a ``parameters`` dict) is recipe
    version 0, which :func:`kinema.document.recipes.upgrade` types as the document is read."""
    return {**data, "schema_version": 4}


def _v4_to_v5(data: Data) -> Data:
    """v5: layers may hold style items (``kind: "style"``: styled key frames), absent before."""
    return {**data, "schema_version": 5}


def _v5_to_v6(data: Data) -> Data:
    """v6: style items say which footage frame they start at (``source_start``, 0 before) and
    their propagation ``quality`` (fast before); a key may name its own image (``path``)."""
    return {**data, "schema_version": 6}


def _exact_rate(value: float | str) -> Fraction:
    """v1 wrote rates as floats: 29.97 means 30000/1001."""
    return snap_rate(to_fraction(value))


MIGRATIONS: dict[int, Callable[[Data], Data]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4,
                                                 4: _v4_to_v5, 5: _v5_to_v6}
"""``MIGRATIONS[n]`` turns a version-``n`` document into version ``n + 1``."""


def version_of(data: Data) -> int:
    """The schema version a loaded JSON document declares."""
    version = data.get("schema_version", data.get("version"))
    if not isinstance(version, int):
        raise InvalidArgumentError("project.json declares no schema version")
    return version


def migrate(data: Data, target: int) -> Data:
    """``data`` brought forward to schema ``target``."""
    version = version_of(data)
    if version > target:
        raise InvalidArgumentError(
            f"project was saved by a newer kinema (schema {version}, this one reads up to {target})",
            hint="upgrade kinema to open it")
    while version < target:
        data = MIGRATIONS[version](data)
        version += 1
    return data
