"""Exact time helpers: rates and times are ``fractions.Fraction``, never floats."""

from __future__ import annotations

from fractions import Fraction
from numbers import Real

from kinema.core.errors import InvalidArgumentError

# Rates that float containers (webm, mkv with ms timestamps) approximate.
STANDARD_RATES: tuple[Fraction, ...] = tuple(
    Fraction(n, d)
    for n, d in [
        (24000, 1001), (24, 1), (25, 1), (30000, 1001), (30, 1), (48, 1), (50, 1),
        (60000, 1001), (60, 1), (90, 1), (100, 1), (120000, 1001), (120, 1), (15, 1),
        (12, 1), (10, 1), (8, 1), (6, 1), (5, 1), (1, 1), (240, 1),
    ]
)


def to_fraction(value: Real | str | Fraction) -> Fraction:
    """Parse a rate or time: ``Fraction``, int, float, ``"30000/1001"`` or ``"29.97"``."""
    try:
        if isinstance(value, Fraction):
            return value
        if isinstance(value, str):
            return Fraction(value.strip())
        if isinstance(value, float):
            return Fraction(value).limit_denominator(1_000_000)
        return Fraction(value)
    except (ValueError, ZeroDivisionError, TypeError) as exc:
        raise InvalidArgumentError(f"not a number or ratio: {value!r}") from exc


def snap_rate(rate: Fraction, tolerance: float = 0.002) -> Fraction:
    """Return the standard rate nearest ``rate`` if within ``tolerance`` (relative), else ``rate``."""
    if rate <= 0:
        return rate
    nearest = min(STANDARD_RATES, key=lambda std: abs(float(rate / std) - 1.0))
    return nearest if abs(float(rate / nearest) - 1.0) <= tolerance else rate


def format_time(seconds: Real) -> str:
    """Format seconds as ``H:MM:SS.mmm``."""
    ms = int(round(float(seconds) * 1000))
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{sign}{h}:{m:02d}:{s:02d}.{ms:03d}"


def parse_time(text: str) -> Fraction:
    """Parse ``"12.5"``, ``"1:02.5"`` or ``"1:00:02.5"`` into exact seconds."""
    parts = text.strip().split(":")
    if not 1 <= len(parts) <= 3 or any(not p for p in parts):
        raise InvalidArgumentError(f"not a time: {text!r} (use seconds or H:MM:SS.mmm)")
    total = Fraction(0)
    for part in parts:
        try:
            value = Fraction(part)
        except ValueError as exc:
            raise InvalidArgumentError(f"not a time: {text!r} (use seconds or H:MM:SS.mmm)") from exc
        total = total * 60 + value
    return total
