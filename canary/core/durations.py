"""Durations as users write them in YAML (`500ms`, `30s`, `2m`, `1h30m`) and back."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
MAX_DURATION_LENGTH = 32  # for the CRD: the API server prices a CEL rule by its input's size
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> timedelta:
    """Parse `30s`, `2m`, `1h30m`, `250ms`; a bare number counts as seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration must be a string such as 30s, 2m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and re.fullmatch(DURATION_PATTERN, value.strip()):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(value.strip()))
    else:
        raise ValueError(
            f"{value!r} is not a duration: write a number with a unit, such as 30s, 2m or 1h"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(
            f"{value!r} is not a duration: write a non-negative number with a unit, such as 30s"
        )
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(
            f"{value!r} is too long for a duration: write a shorter one, such as 24h"
        ) from None


def format_duration(value: timedelta) -> str:
    """The shortest exact form: 90s -> `1m30s`, 0.25s -> `250ms`."""
    millis = round(value.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    if millis % 1000:
        return f"{millis}ms"
    seconds = millis // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]


class _AtLeast:
    """The lower bound of a duration field, checked by the models and, through a CEL rule in
    the CRD, by the API server (`kubectl apply` refuses what the controller would)."""

    def __init__(self, least: timedelta, inclusive: bool) -> None:
        self.least, self.inclusive = least, inclusive
        self.bound = format_duration(least)
        self.words = f"{'at least' if inclusive else 'longer than'} {self.bound}"

    def check(self, value: timedelta) -> timedelta:
        if value < self.least or (value == self.least and not self.inclusive):
            raise ValueError(f"{format_duration(value)} is too short: give {self.words}")
        return value

    def schema(self) -> dict[str, Any]:
        rule = f"duration(self) {'>=' if self.inclusive else '>'} duration('{self.bound}')"
        return {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": MAX_DURATION_LENGTH,
            "x-kubernetes-validations": [{"rule": rule, "message": f"must be {self.words}"}],
        }


_POSITIVE = _AtLeast(timedelta(0), inclusive=False)
_A_SECOND = _AtLeast(timedelta(seconds=1), inclusive=True)

PositiveDuration = Annotated[
    Duration, AfterValidator(_POSITIVE.check), WithJsonSchema(_POSITIVE.schema())
]
IntervalDuration = Annotated[
    Duration, AfterValidator(_A_SECOND.check), WithJsonSchema(_A_SECOND.schema())
]


def human_age(seconds: float) -> str:
    """Like apimachinery's `duration.HumanDuration`."""
    total = int(seconds)
    if total < 0:
        return "<invalid>"
    minutes, hours, days = total // 60, total // 3600, total // 86400
    if total < 120:
        return f"{total}s"
    if minutes < 10:
        return f"{minutes}m{total % 60}s" if total % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y{days % 365}d"
