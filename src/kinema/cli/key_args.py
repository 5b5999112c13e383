"""``auto N`` as an option's value: ``--keys auto 8`` (propagate), ``--frames auto 8`` (restyle).

An option takes one word, so the number after ``auto`` reaches the command as an extra
argument (its command allows them); it is taken back here, whichever side of the command's own
argument it was written. ``auto:8`` and ``auto=8`` are the same in one word.
"""

from __future__ import annotations

from pathlib import Path

from kinema.core.errors import InvalidArgumentError

AUTO = "auto"
CONTEXT = {"allow_extra_args": True}
"""The context settings of a command whose option may be ``auto N``."""


def is_auto(value: str | None) -> bool:
    """Whether an option's ``value`` asks for keys picked automatically."""
    return value is not None and value.partition(":")[0].partition("=")[0].strip().lower() == AUTO


def auto_count(option: str, value: str | None, extra: list[str],
               argument: Path) -> tuple[int | None, Path]:
    """The number of keys ``option`` asks for with ``auto N`` (``None``: not auto) and the
    command's argument, given the words left over (``extra``): the number may have been taken
    for the argument when written before it (``--keys auto 8 clip.mp4``)."""
    example = f"e.g. {option} auto 8"
    if not is_auto(value):
        if extra:
            raise InvalidArgumentError(f"unexpected argument {' '.join(extra)!r}",
                                       hint=f"{option} takes one value; {example} picks keys")
        return None, argument
    assert value is not None
    word = value.strip()[len(AUTO):].lstrip(":=").strip()
    words = [w for w in (word, *extra) if w]
    if word and extra:
        raise InvalidArgumentError(f"unexpected argument {' '.join(extra)!r}", hint=example)
    if len(words) == 1 and _is_int(words[0]):
        return int(words[0]), argument
    if not word and len(extra) == 1 and _is_int(str(argument)) and not argument.exists():
        return int(str(argument)), Path(extra[0])  # the number came before the argument
    raise InvalidArgumentError(f"{option} auto needs the number of keys", hint=example)


def _is_int(text: str) -> bool:
    return text.lstrip("+-").isdigit()
