"""User-facing sentences for validation errors: the field path, what is wrong, the fix."""

from __future__ import annotations

import json
import re

from pydantic import ValidationError

_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_FRIENDLIER = {
    "missing": "is required",
    "extra_forbidden": "is not a known field: remove it or check its spelling",
}


def field_path(loc: tuple[int | str, ...]) -> str:
    """('spec', 'analysis', 'gates', 1, 'name') -> 'spec.analysis.gates[1].name'."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith(("function-", "tagged-union")):
            continue
        elif not _PLAIN_KEY.fullmatch(part):
            path += f"[{json.dumps(part)}]"
        else:
            path += f".{part}" if path else part
    return path


def describe_validation_error(error: ValidationError, root: str = "") -> list[str]:
    """One sentence per problem, each starting with the field path."""
    sentences = []
    for problem in error.errors(include_url=False):
        message = _FRIENDLIER.get(problem["type"], problem["msg"])
        for prefix in _PYDANTIC_PREFIXES:
            message = message.removeprefix(prefix)
        loc = tuple(problem["loc"])
        path = field_path(((root,) if root else ()) + loc)
        message = " ".join(message.split())
        sentences.append(f"{path}: {message}" if path else message)
    return sentences
