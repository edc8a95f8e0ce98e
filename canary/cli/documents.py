"""Reading YAML files of Kubernetes objects, with one clear sentence per problem."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class DocumentError(Exception):
    """A file that cannot be read as Kubernetes YAML; the message names the file and the fix."""


@dataclass(frozen=True)
class Document:
    source: str  # "path" or "path#2" for the second document of a file
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def name(self) -> str:
        meta = self.body.get("metadata") or {}
        name = meta.get("name", "<no name>") if isinstance(meta, dict) else "<no name>"
        namespace = meta.get("namespace") if isinstance(meta, dict) else None
        return f"{namespace}/{name}" if namespace else str(name)


def read_documents(path: str) -> Iterator[Document]:
    """Every non-empty YAML document of a file (`-` reads standard input)."""
    text = _read_text(path)
    try:
        bodies = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        raise DocumentError(f"{path}: {_yaml_problem(error)}") from None
    numbered = [(i, b) for i, b in enumerate(bodies, start=1) if b is not None]
    for index, body in numbered:
        source = path if len(numbered) == 1 else f"{path}#{index}"
        if not isinstance(body, dict):
            raise DocumentError(
                f"{source}: expected a Kubernetes object (a YAML mapping with apiVersion, kind, "
                f"metadata and spec), found {type(body).__name__}"
            )
        yield Document(source, body)


def read_one(path: str, kind: str) -> Document:
    documents = [d for d in read_documents(path) if d.kind == kind]
    if len(documents) != 1:
        raise DocumentError(f"{path}: expected exactly one {kind}, found {len(documents)}")
    return documents[0]


def _read_text(path: str) -> str:
    if path == "-":
        import sys

        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DocumentError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DocumentError(f"{path}: is a directory; name the YAML files in it") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DocumentError(f"{path}: cannot be read ({error})") from None


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = " ".join(str(getattr(error, "problem", None) or error).split())
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}invalid YAML ({problem}); fix the indentation or quoting there"
