"""Kubernetes objects as the API serves them (plain dicts, camelCase), and the few questions
every layer asks of one: its key, its resourceVersion, which of two versions is newer."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def metadata_of(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def key_of(obj: Obj) -> str:
    """namespace/name (a namespaced object without a namespace is in `default`)."""
    meta = metadata_of(obj)
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


def resource_version(obj: Obj) -> str:
    """The object's resourceVersion; "" when it has none."""
    return str(metadata_of(obj).get("resourceVersion") or "")


def is_newer(candidate: Obj, current: Obj | None) -> bool:
    """Whether `candidate` may replace `current`: not older (unknown versions: yes).

    resourceVersions are opaque to clients; comparing them as numbers is what every cache here
    does, and it holds for kube-apiserver (etcd revisions) and the sandbox alike.
    """
    return current is None or version_not_older(
        resource_version(candidate), resource_version(current)
    )


def version_not_older(new: str, old: str | None) -> bool:
    """`is_newer` for resourceVersions kept apart from their objects."""
    if old is not None and new.isdigit() and old.isdigit():
        return int(new) >= int(old)
    return True


def without_managed_fields(obj: Obj) -> Obj:
    """`obj` without `metadata.managedFields` (a shallow copy; `obj` is left as it is). No
    reconcile reads them, and on a real apiserver they are a large part of every object the
    caches keep. A PUT of the object without them keeps them as the apiserver has them."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or "managedFields" not in metadata:
        return obj
    trimmed = {key: value for key, value in metadata.items() if key != "managedFields"}
    return {**obj, "metadata": trimmed}
