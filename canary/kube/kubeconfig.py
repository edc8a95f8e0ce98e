"""The kubeconfig, read once: kubectl's merge of the files named by --kubeconfig or $KUBECONFIG.

The CLI reads its context and namespace from the merged document, and the client connects
with the same document (`KubeCluster.from_merged`), so the two can never disagree about
which file, context or credentials a command uses. No `kubernetes` import here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# the fields of a cluster or user entry that name a file, relative to the kubeconfig that says so
_FILE_FIELDS = {
    "clusters": ("cluster", ("certificate-authority",)),
    "users": ("user", ("client-certificate", "client-key", "tokenFile")),
}
_NAMED_LISTS = ("clusters", "users", "contexts")


class KubeconfigError(ValueError):
    """A kubeconfig file that cannot be used: which, what is wrong with it, and the fix."""

    def __init__(self, path: Path | str, problem: str, fix: str) -> None:
        super().__init__(f"kubeconfig {path} {problem}: {fix}")
        self.path, self.problem, self.fix = path, problem, fix


@dataclass(frozen=True)
class Kubeconfig:
    """The merged document and the files it came from."""

    document: dict[str, Any]
    paths: tuple[Path, ...]

    @property
    def current_context(self) -> str | None:
        current = self.document.get("current-context")
        return str(current) if current else None

    def contexts(self) -> dict[str, dict[str, Any]]:
        """Each context's name and body (cluster, user, namespace)."""
        return {
            str(entry.get("name")): entry.get("context") or {}
            for entry in self.document["contexts"]
        }


def kubeconfig_files(explicit: str | None) -> list[Path]:
    """The files to merge: --kubeconfig, which must exist; else those of $KUBECONFIG (or
    ~/.kube/config) that exist, as kubectl skips the missing ones."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise KubeconfigError(explicit, "does not exist", "check --kubeconfig")
        return [path]
    listed = os.environ.get("KUBECONFIG", "")
    paths = [Path(p).expanduser() for p in listed.split(os.pathsep) if p] or [
        Path("~/.kube/config").expanduser()
    ]
    return [path for path in paths if path.is_file()]


def merge(paths: list[Path]) -> Kubeconfig:
    """kubectl's merge: the first file that sets current-context or names an entry wins; a
    relative file path in an entry is taken relative to the file it is written in."""
    merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "current-context": None}
    merged.update({kind: [] for kind in _NAMED_LISTS})
    seen: dict[str, set[str]] = {kind: set() for kind in _NAMED_LISTS}
    for path in paths:
        document = _read(path)
        merged["current-context"] = merged["current-context"] or document.get("current-context")
        for kind in _NAMED_LISTS:
            for entry in document.get(kind) or []:
                if isinstance(entry, dict) and str(entry.get("name")) not in seen[kind]:
                    seen[kind].add(str(entry.get("name")))
                    merged[kind].append(_anchored(kind, entry, path.parent))
    return Kubeconfig(merged, tuple(paths))


def _read(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        problem = f"cannot be read ({error.strerror})"
        raise KubeconfigError(path, problem, "check its permissions or --kubeconfig") from None
    except yaml.YAMLError:
        raise KubeconfigError(path, "is not valid YAML", "fix or regenerate it") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        problem = "is not a kubeconfig (expected a mapping)"
        raise KubeconfigError(path, problem, "point --kubeconfig at one")
    return document


def _anchored(kind: str, entry: dict[str, Any], base: Path) -> dict[str, Any]:
    if kind not in _FILE_FIELDS:
        return entry
    body_key, fields = _FILE_FIELDS[kind]
    body = entry.get(body_key)
    if not isinstance(body, dict):
        return entry
    anchored = {
        key: str(base / value)
        if key in fields and isinstance(value, str) and value and not Path(value).is_absolute()
        else value
        for key, value in body.items()
    }
    return {**entry, body_key: anchored}
