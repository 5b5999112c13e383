"""Time in the document, with OpenTimelineIO's names and semantics but exact rationals.

``RationalTime(value, rate)`` is ``value / rate`` seconds; ``TimeRange(start_time, duration)``
is half-open: it holds ``start_time`` and ends just before ``end_time_exclusive``.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer

from kinema.core.timebase import to_fraction


def _as_fraction(value: object) -> Fraction:
    return to_fraction(value)  # type: ignore[arg-type]


Rational = Annotated[
    Fraction,
    BeforeValidator(_as_fraction),
    PlainSerializer(lambda f: str(f), return_type=str),
]
"""A ``Fraction`` stored in JSON as ``"30000/1001"`` (or ``"25"``), never as a float."""


class RationalTime(BaseModel):
    """A point in time: ``value`` units at ``rate`` units per second. Two times are equal when
    they are the same instant, whatever their rates (``1/24 == 2/48``), as in OpenTimelineIO."""

    model_config = ConfigDict(frozen=True)

    value: Rational
    rate: Rational

    @property
    def seconds(self) -> Fraction:
        return self.value / self.rate

    def rescaled_to(self, rate: Fraction | int) -> RationalTime:
        """The same instant counted at ``rate`` (exact, possibly fractional value)."""
        return RationalTime(value=self.seconds * Fraction(rate), rate=Fraction(rate))

    def __add__(self, other: RationalTime) -> RationalTime:
        return RationalTime(value=self.value + other.rescaled_to(self.rate).value, rate=self.rate)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RationalTime):
            return NotImplemented
        return self.seconds == other.seconds

    def __hash__(self) -> int:
        return hash(self.seconds)

    def __lt__(self, other: RationalTime) -> bool:
        return self.seconds < other.seconds

    def __le__(self, other: RationalTime) -> bool:
        return self.seconds <= other.seconds


class TimeRange(BaseModel):
    """``[start_time, start_time + duration)``; equal to another when both start at the same
    instant and last as long."""

    model_config = ConfigDict(frozen=True)

    start_time: RationalTime
    duration: RationalTime

    @property
    def end_time_exclusive(self) -> RationalTime:
        return self.start_time + self.duration

    def contains(self, t: RationalTime) -> bool:
        """Whether ``t`` falls in the half-open range."""
        return self.start_time.seconds <= t.seconds < self.end_time_exclusive.seconds

    @classmethod
    def from_frames(cls, start: int, count: int, rate: Fraction | int) -> TimeRange:
        """Frames ``[start, start + count)`` at ``rate``."""
        r = Fraction(rate)
        return cls(start_time=RationalTime(value=start, rate=r),
                   duration=RationalTime(value=count, rate=r))

    def frames(self) -> range:
        """The frame numbers in the range, at its start time's rate."""
        rate = self.start_time.rate
        first = self.start_time.value
        count = self.duration.rescaled_to(rate).value
        return range(int(first), int(first + count))
