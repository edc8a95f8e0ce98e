"""Which resources the sandbox serves: the built-in ones and those installed by CRDs."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from canary.core.objects import Obj

CRD_GROUP = "apiextensions.k8s.io"
CRD_PLURAL = "customresourcedefinitions"
OBJECT_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = ("get", "patch", "update")
PRESERVE_EVERYTHING: Obj = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    has_status: bool = False
    schema: Obj | None = field(default=None, compare=False, hash=False)
    printer_columns: tuple[Obj, ...] = field(default=(), compare=False, hash=False)
    from_crd: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> tuple[str, str]:
        """Objects are stored once per group and plural, whatever version they are served at."""
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def discovery_entries(self) -> list[Obj]:
        main: Obj = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(OBJECT_VERBS),
        }
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        if self.categories:
            main["categories"] = list(self.categories)
        entries = [main]
        if self.has_status:
            entries.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": list(SUBRESOURCE_VERBS),
                }
            )
        return entries


def _builtin(
    group: str,
    version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short_names: tuple[str, ...] = (),
    has_status: bool = False,
    categories: tuple[str, ...] = (),
) -> ResourceType:
    singular = kind.lower()
    return ResourceType(
        group, version, plural, singular, kind, namespaced, short_names, categories, has_status
    )


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _builtin(
        "", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",), has_status=True
    ),
    _builtin("", "v1", "events", "Event", short_names=("ev",)),
    _builtin(
        "", "v1", "services", "Service", short_names=("svc",), has_status=True, categories=("all",)
    ),
    _builtin("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    _builtin("", "v1", "secrets", "Secret"),
    _builtin("", "v1", "pods", "Pod", short_names=("po",), has_status=True, categories=("all",)),
    _builtin(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        short_names=("deploy",),
        has_status=True,
        categories=("all",),
    ),
    _builtin("events.k8s.io", "v1", "events", "Event", short_names=("ev",)),
    _builtin("coordination.k8s.io", "v1", "leases", "Lease"),
    _builtin(
        CRD_GROUP,
        "v1",
        CRD_PLURAL,
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        has_status=True,
    ),
)


def _version_sort_key(version: str) -> tuple[int, int, int, str]:
    """Kubernetes version priority: GA > beta > alpha, then higher numbers first."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if match is None:
        return (3, 0, 0, version)
    major, stage, minor = match.groups()
    stage_rank = {"beta": 1, "alpha": 2}.get(stage or "", 0)
    return (stage_rank, -int(major), -int(minor or 0), version)


def sort_versions(versions: list[str]) -> list[str]:
    return sorted(set(versions), key=_version_sort_key)


def crd_resource_types(crd: Obj) -> list[ResourceType]:
    """One ResourceType per served version of a CustomResourceDefinition object."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    kind = names.get("kind", "")
    types = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema") or PRESERVE_EVERYTHING
        types.append(
            ResourceType(
                group=spec.get("group", ""),
                version=version["name"],
                plural=names.get("plural", ""),
                singular=names.get("singular") or kind.lower(),
                kind=kind,
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                has_status="status" in (version.get("subresources") or {}),
                schema=schema,
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                from_crd=True,
            )
        )
    return types


def crd_problems(crd: Obj) -> list[Obj]:
    """Causes that make a CRD unacceptable (a small subset of the real checks)."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    causes: list[Obj] = []

    def require(path: str, present: Any) -> None:
        if not present:
            causes.append(
                {"reason": "FieldValueRequired", "message": "Required value", "field": path}
            )

    require("spec.group", spec.get("group"))
    require("spec.names.plural", names.get("plural"))
    require("spec.names.kind", names.get("kind"))
    require("spec.versions", spec.get("versions"))
    expected_name = f"{names.get('plural')}.{spec.get('group')}"
    name = crd.get("metadata", {}).get("name")
    if not causes and name != expected_name:
        causes.append(
            {
                "reason": "FieldValueInvalid",
                "message": f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                "field": "metadata.name",
            }
        )
    storage = [v for v in spec.get("versions", []) if v.get("storage")]
    if spec.get("versions") and len(storage) != 1:
        causes.append(
            {
                "reason": "FieldValueInvalid",
                "message": "Invalid value: must have exactly one version marked as storage version",
                "field": "spec.versions",
            }
        )
    return causes


def crd_status(crd: Obj) -> Obj:
    """The status the real server converges to once a CRD is established."""
    spec = crd.get("spec", {})
    storage = [v["name"] for v in spec.get("versions", []) if v.get("storage")]
    condition = {"status": "True", "lastTransitionTime": crd["metadata"]["creationTimestamp"]}
    return {
        "acceptedNames": spec.get("names", {}),
        "conditions": [
            {
                **condition,
                "type": "NamesAccepted",
                "reason": "NoConflicts",
                "message": "no conflicts found",
            },
            {
                **condition,
                "type": "Established",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
            },
        ],
        "storedVersions": storage,
    }


class Registry:
    """Thread-safe map from (group, version, plural) to ResourceType."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._by_crd: dict[str, list[ResourceType]] = {}
        for resource_type in BUILTIN_TYPES:
            self._add(resource_type)

    def _add(self, resource_type: ResourceType) -> None:
        key = (resource_type.group, resource_type.version, resource_type.plural)
        self._types[key] = resource_type

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        with self._lock:
            return self._types.get((group, version, plural))

    def all_types(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types.values())

    def group_versions(self) -> dict[str, list[str]]:
        """group -> versions, preferred version first."""
        grouped: dict[str, list[str]] = {}
        for resource_type in self.all_types():
            grouped.setdefault(resource_type.group, []).append(resource_type.version)
        return {group: sort_versions(versions) for group, versions in grouped.items()}

    def types_in(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self.all_types() if t.group == group and t.version == version]

    def install_crd(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        with self._lock:
            self._remove_locked(name)
            types = crd_resource_types(crd)
            for resource_type in types:
                self._add(resource_type)
            self._by_crd[name] = types

    def remove_crd(self, name: str) -> list[ResourceType]:
        with self._lock:
            return self._remove_locked(name)

    def _remove_locked(self, name: str) -> list[ResourceType]:
        removed = self._by_crd.pop(name, [])
        for resource_type in removed:
            self._types.pop(
                (resource_type.group, resource_type.version, resource_type.plural), None
            )
        return removed
