"""Durations in Prometheus's syntax (``90s``, ``1h30m``, ``28d``, ``500ms``): the one parser and
formatter every part of the package uses.

A duration is one or more ``<number><unit>`` parts, units from the largest down, each at most
once: ``y`` (365 days), ``w``, ``d``, ``h``, ``m``, ``s``, ``ms``.
"""

from __future__ import annotations

import re

#: Seconds per unit, largest first (the order Prometheus demands).
UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
_DURATION = re.compile("".join(rf"(?:(\d+){unit})?" for unit in UNITS))


def parts(text: str) -> list[tuple[int, str]]:
    """``"1h30m"`` -> ``[(1, "h"), (30, "m")]``; ValueError on anything Prometheus would not accept."""
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"{text!r} is not a duration like 5m, 1h30m or 28d")
    return [(int(number), unit) for number, unit in zip(match.groups(), UNITS) if number is not None]


def parse(text: str) -> float:
    """``"1m30s"`` -> 90.0, ``"500ms"`` -> 0.5; ValueError when it is not a duration."""
    return sum(number * UNITS[unit] for number, unit in parts(text))


def seconds(text: str) -> int:
    """``"2d19h12m"`` -> 241920; ValueError when it is not a duration of whole seconds."""
    total = parse(text)
    if total != int(total):
        raise ValueError(f"{text!r} is not a whole number of seconds")
    return int(total)


def render(total_seconds: float) -> str:
    """The duration text of a whole number of seconds, in days at most: 241920 -> ``"2d19h12m"``."""
    remaining = int(round(total_seconds))
    if remaining <= 0:
        return "0s"
    text = ""
    for unit in "dhms":
        count, remaining = divmod(remaining, int(UNITS[unit]))
        if count:
            text += f"{count}{unit}"
    return text


def humanize(total_seconds: float) -> str:
    """Short human text for a time span: ``0.4s``, ``52s``, ``4m19s``, ``1h``, ``2d19h12m``."""
    if total_seconds < 60:
        return f"{total_seconds:.0f}s" if total_seconds >= 1 else f"{total_seconds:.1f}s"
    return render(round(total_seconds))
