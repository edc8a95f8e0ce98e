"""What the API server does with objects: create, read, list, replace, patch, delete.

Real semantics the tests rely on: uid, creationTimestamp, a global resourceVersion, generation
bumped only when something outside metadata and status changes, 409 on a stale
resourceVersion, the status subresource split, finalizers, CRD schemas enforced and pruned.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import string
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from canary.core.objects import Obj
from canary_sandbox import errors, patch, schema
from canary_sandbox.errors import ApiError
from canary_sandbox.resources import (
    CRD_GROUP,
    CRD_PLURAL,
    Registry,
    ResourceType,
    crd_problems,
    crd_status,
)
from canary_sandbox.selectors import field_selector, label_selector, supported_fields
from canary_sandbox.store import Store

NAMESPACES_KEY = ("", "namespaces")
IMMUTABLE_METADATA = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class WriteOptions:
    """Per-request knobs: `fieldValidation` (Strict | Warn | Ignore) and collected warnings."""

    field_validation: str = "Warn"
    warnings: list[str] = field(default_factory=list)


def _without_volatile(obj: Obj) -> Obj:
    trimmed = copy.deepcopy(obj)
    metadata = trimmed.get("metadata", {})
    metadata.pop("resourceVersion", None)
    metadata.pop("managedFields", None)
    return trimmed


def _spec_part(obj: Obj) -> Obj:
    """Everything that counts for `generation`: all top-level fields but metadata and status."""
    ignored = ("metadata", "status", "apiVersion", "kind")
    return {key: value for key, value in obj.items() if key not in ignored}


class ObjectService:
    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry

    # --- reads ---------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        found = self.store.get(rt.storage_key, namespace, name)
        if found is None:
            raise errors.not_found(rt.group, rt.plural, name)
        return self.view(rt, found)

    def list_objects(
        self,
        rt: ResourceType,
        namespace: str | None,
        labels: str | None = None,
        fields: str | None = None,
    ) -> Obj:
        label_match = label_selector(labels)
        field_match = field_selector(fields, supported_fields(rt.from_crd))
        with self.store.lock:
            items = self.store.list_objects(rt.storage_key, namespace)
            resource_version = self.store.resource_version
        return {
            "apiVersion": rt.api_version,
            "kind": rt.list_kind,
            "metadata": {"resourceVersion": str(resource_version)},
            "items": [
                self.view(rt, item) for item in items if label_match(item) and field_match(item)
            ],
        }

    @staticmethod
    def view(rt: ResourceType, obj: Obj) -> Obj:
        """The object as served at `rt`'s version (no conversion, like CRDs with None)."""
        return {"apiVersion": rt.api_version, "kind": rt.kind, **_without_type_meta(obj)}

    # --- create --------------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str, body: Any, options: WriteOptions) -> Obj:
        obj = self._checked_body(rt, body)
        metadata = obj["metadata"]
        metadata["name"] = self._name_for_create(rt, metadata)
        self._place_in_namespace(rt, namespace, metadata)
        with self.store.lock:
            if rt.has_status:
                obj.pop("status", None)
            obj = self._admit(
                rt, obj, options
            )  # an invalid object is 422 even if its name is taken
            if self.store.get(rt.storage_key, namespace, metadata["name"]) is not None:
                raise errors.already_exists(rt.group, rt.plural, metadata["name"])
            for key in ("resourceVersion", *IMMUTABLE_METADATA):
                metadata = obj["metadata"]
                metadata.pop(key, None)
            metadata.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339(), generation=1)
            self._apply_builtin_defaults(rt, obj)
            stored = self.store.write(rt.storage_key, obj, None)
            if (rt.group, rt.plural) == (CRD_GROUP, CRD_PLURAL):
                self.registry.install_crd(stored)
            return self.view(rt, stored)

    def _name_for_create(self, rt: ResourceType, metadata: Obj) -> str:
        name = metadata.get("name")
        if not name and metadata.get("generateName"):
            alphabet = string.ascii_lowercase + string.digits
            name = metadata["generateName"] + "".join(secrets.choice(alphabet) for _ in range(5))
        if not name:
            cause = {
                "reason": "FieldValueRequired",
                "message": "Required value: name or generateName is required",
                "field": "metadata.name",
            }
            raise errors.invalid(rt.kind, rt.group, "", [cause])
        problem = name_problem(rt.kind, str(name))
        if problem is not None:
            cause = {
                "reason": "FieldValueInvalid",
                "message": f'Invalid value: "{name}": {problem}',
                "field": "metadata.name",
            }
            raise errors.invalid(rt.kind, rt.group, str(name), [cause])
        return str(name)

    def _place_in_namespace(self, rt: ResourceType, namespace: str, metadata: Obj) -> None:
        if not rt.namespaced:
            metadata.pop("namespace", None)
            return
        if metadata.get("namespace") not in (None, "", namespace):
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        metadata["namespace"] = namespace
        if self.store.get(NAMESPACES_KEY, "", namespace) is None:
            raise errors.not_found("", "namespaces", namespace)

    @staticmethod
    def _apply_builtin_defaults(rt: ResourceType, obj: Obj) -> None:
        if (rt.group, rt.plural) == ("", "namespaces"):
            obj["status"] = {"phase": "Active"}
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        elif (rt.group, rt.plural) == ("apps", "deployments"):
            obj.setdefault("spec", {}).setdefault("replicas", 1)
        elif (rt.group, rt.plural) == (CRD_GROUP, CRD_PLURAL):
            obj["status"] = crd_status(obj)

    # --- replace and patch ---------------------------------------------------------------

    def replace(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str | None,
        options: WriteOptions,
    ) -> Obj:
        obj = self._checked_body(rt, body)
        if rt.from_crd and not obj["metadata"].get("resourceVersion"):
            cause = {
                "reason": "FieldValueInvalid",
                "message": "Invalid value: 0: must be specified for an update",
                "field": "metadata.resourceVersion",
            }
            raise errors.invalid(rt.plural, rt.group, name, [cause])
        with self.store.lock:
            current = self._current(rt, namespace, name)
            return self._update(rt, current, obj, subresource, options)

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        raw: bytes,
        *,
        subresource: str | None,
        options: WriteOptions,
    ) -> tuple[Obj, bool]:
        """Apply a patch; returns the object and whether it was created (server-side apply)."""
        document = _parse_patch(content_type, raw)
        with self.store.lock:
            found = self.store.get(rt.storage_key, namespace, name)
            if found is None and content_type == patch.APPLY_PATCH and subresource is None:
                document.setdefault("metadata", {}).setdefault("name", name)
                return self.create(rt, namespace, document, options), True
            if found is None:
                raise errors.not_found(rt.group, rt.plural, name)
            current = self.view(rt, found)
            patched = _apply_patch(rt, content_type, current, document)
            return self._update(
                rt, found, self._checked_body(rt, patched), subresource, options
            ), False

    def _current(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        found = self.store.get(rt.storage_key, namespace, name)
        if found is None:
            raise errors.not_found(rt.group, rt.plural, name)
        return found

    def _update(
        self,
        rt: ResourceType,
        current: Obj,
        obj: Obj,
        subresource: str | None,
        options: WriteOptions,
    ) -> Obj:
        name = current["metadata"]["name"]
        if obj["metadata"].get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({obj['metadata']['name']}) does not match the name on "
                f"the URL ({name})"
            )
        sent_version = obj["metadata"].get("resourceVersion")
        if sent_version and sent_version != current["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.group, rt.plural, name)
        updated = self._admit(rt, _merge_for_update(rt, current, obj, subresource), options)
        _check_no_new_finalizers(rt, current, updated)
        if _spec_part(updated) != _spec_part(current):
            updated["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        if _without_volatile(updated) == _without_volatile(current):
            return self.view(rt, current)
        if updated["metadata"].get("deletionTimestamp") and not updated["metadata"].get(
            "finalizers"
        ):
            return self.view(rt, self._remove(rt, updated))
        stored = self.store.write(rt.storage_key, updated, current)
        if (rt.group, rt.plural) == (CRD_GROUP, CRD_PLURAL):
            self.registry.install_crd(stored)
        return self.view(rt, stored)

    # --- delete --------------------------------------------------------------------------

    def delete(
        self, rt: ResourceType, namespace: str, name: str, options: Obj | None
    ) -> tuple[Obj, bool]:
        """Delete, or mark for deletion while finalizers remain; returns (object, gone)."""
        with self.store.lock:
            current = self._current(rt, namespace, name)
            _check_preconditions(rt, current, (options or {}).get("preconditions") or {})
            metadata = current["metadata"]
            if metadata.get("finalizers"):
                if metadata.get("deletionTimestamp"):
                    return self.view(rt, current), False
                marked = copy.deepcopy(current)
                marked["metadata"].update(  # marking for deletion moves the generation too
                    deletionTimestamp=now_rfc3339(),
                    deletionGracePeriodSeconds=0,
                    generation=metadata.get("generation", 1) + 1,
                )
                return self.view(rt, self.store.write(rt.storage_key, marked, current)), False
            return self.view(rt, self._remove(rt, current)), True

    def _remove(self, rt: ResourceType, obj: Obj) -> Obj:
        final = self.store.remove(rt.storage_key, obj)
        if (rt.group, rt.plural) == (CRD_GROUP, CRD_PLURAL):
            self._remove_crd_objects(obj)
        elif (rt.group, rt.plural) == ("", "namespaces"):
            for storage_key, inner in self.store.namespaces_in_use(obj["metadata"]["name"]):
                self.store.remove(storage_key, inner)
        return final

    def _remove_crd_objects(self, crd: Obj) -> None:
        removed = self.registry.remove_crd(crd["metadata"]["name"])
        for storage_key in {rt.storage_key for rt in removed}:
            for obj in self.store.list_objects(storage_key):
                self.store.remove(storage_key, obj)

    # --- admission: schema, pruning, CRD checks -------------------------------------------

    def _checked_body(self, rt: ResourceType, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        obj = copy.deepcopy(body)
        sent_version, sent_kind = obj.get("apiVersion"), obj.get("kind")
        if sent_version and sent_version != rt.api_version:
            raise errors.bad_request(
                f"the API version in the data ({sent_version}) does not match the expected "
                f"API version ({rt.api_version})"
            )
        if sent_kind and sent_kind != rt.kind:
            cause = {
                "reason": "FieldValueInvalid",
                "message": f'Invalid value: "{sent_kind}": must be {rt.kind}',
                "field": "kind",
            }
            name = (obj.get("metadata") or {}).get("name", "")
            raise errors.invalid(str(sent_kind), rt.group, name, [cause])
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        if not isinstance(obj.get("metadata"), dict):
            obj["metadata"] = {}
        return obj

    def _admit(self, rt: ResourceType, obj: Obj, options: WriteOptions) -> Obj:
        if rt.schema is not None and rt.from_crd:
            obj = self._prune(rt, obj, options)
            causes = schema.validate(obj, rt.schema)
            if causes and schema.has_cel_rules(rt.schema):
                causes.append(schema.CEL_NOT_CHECKED)
            if causes:
                raise errors.invalid(rt.kind, rt.group, obj["metadata"].get("name", ""), causes)
        if (rt.group, rt.plural) == (CRD_GROUP, CRD_PLURAL):
            causes = crd_problems(obj)
            if causes:
                raise errors.invalid(rt.kind, rt.group, obj["metadata"].get("name", ""), causes)
        return obj

    @staticmethod
    def _prune(rt: ResourceType, obj: Obj, options: WriteOptions) -> Obj:
        assert rt.schema is not None
        pruned_obj, pruned_paths = schema.prune_and_default(obj, rt.schema)
        if pruned_paths and options.field_validation == "Strict":
            unknown = ", ".join(f'unknown field "{path}"' for path in pruned_paths)
            raise errors.bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                f"strict decoding error: {unknown}"
            )
        if options.field_validation == "Warn":
            options.warnings.extend(f'unknown field "{path}"' for path in pruned_paths)
        return pruned_obj


def _without_type_meta(obj: Obj) -> Obj:
    return {key: value for key, value in obj.items() if key not in ("apiVersion", "kind")}


def _merge_for_update(rt: ResourceType, current: Obj, obj: Obj, subresource: str | None) -> Obj:
    if subresource == "status":
        updated = copy.deepcopy(current)
        _copy_field(obj, updated, "status")
        return updated
    if subresource is not None:
        raise errors.not_found(rt.group, f"{rt.plural}/{subresource}", current["metadata"]["name"])
    updated = copy.deepcopy(obj)
    if rt.has_status:
        _copy_field(current, updated, "status")
    metadata = updated["metadata"]
    for key in ("name", "namespace", "generation", "resourceVersion", *IMMUTABLE_METADATA):
        if key in current["metadata"]:
            metadata[key] = current["metadata"][key]
        else:
            metadata.pop(key, None)
    return updated


def _copy_field(source: Obj, target: Obj, key: str) -> None:
    if key in source:
        target[key] = copy.deepcopy(source[key])
    else:
        target.pop(key, None)


def _check_no_new_finalizers(rt: ResourceType, current: Obj, updated: Obj) -> None:
    """Once deletion started, finalizers may only be removed (kube-apiserver's rule)."""
    if not current["metadata"].get("deletionTimestamp"):
        return
    before = set(current["metadata"].get("finalizers") or [])
    new = [f for f in updated["metadata"].get("finalizers") or [] if f not in before]
    if new:
        listed = ", ".join(f'"{f}"' for f in new)
        cause = {
            "reason": "FieldValueForbidden",
            "message": "Forbidden: no new finalizers can be added if the object is being "
            f"deleted, found new finalizers []string{{{listed}}}",
            "field": "metadata.finalizers",
        }
        raise errors.invalid(rt.kind, rt.group, current["metadata"]["name"], [cause])


def _check_preconditions(rt: ResourceType, current: Obj, preconditions: Obj) -> None:
    metadata = current["metadata"]
    expected_version = preconditions.get("resourceVersion")
    expected_uid = preconditions.get("uid")
    if (expected_version and expected_version != metadata["resourceVersion"]) or (
        expected_uid and expected_uid != metadata["uid"]
    ):
        raise errors.conflict(rt.group, rt.plural, metadata["name"])


def _parse_patch(content_type: str, raw: bytes) -> Any:
    if content_type not in patch.PATCH_TYPES:
        raise errors.unsupported_media_type(content_type)
    try:
        if content_type == patch.APPLY_PATCH:
            document = yaml.safe_load(raw.decode() or "{}")
        else:
            document = json.loads(raw or b"null")
    except (ValueError, yaml.YAMLError) as error:
        raise errors.bad_request(f"error decoding patch: {error}") from error
    if content_type == patch.JSON_PATCH:
        return document
    if not isinstance(document, dict):
        raise errors.bad_request("the patch must be a JSON object")
    return document


def _apply_patch(rt: ResourceType, content_type: str, current: Obj, document: Any) -> Any:
    if content_type == patch.JSON_PATCH:
        return patch.json_patch(current, document)
    if content_type == patch.STRATEGIC_MERGE_PATCH or (
        content_type == patch.APPLY_PATCH and not rt.from_crd
    ):
        return patch.strategic_merge_patch(current, document)
    return patch.merge_patch(current, document)


def ensure_namespace(service: ObjectService, name: str) -> None:
    """Create a namespace if it does not exist yet (used at startup and by tests)."""
    namespaces = service.registry.lookup("", "v1", "namespaces")
    assert namespaces is not None
    try:
        service.create(namespaces, "", {"metadata": {"name": name}}, WriteOptions())
    except ApiError as error:
        if error.code != 409:
            raise


_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = f"{_LABEL}(\\.{_LABEL})*"
_LABEL_1035 = "[a-z]([-a-z0-9]*[a-z0-9])?"
_NAMES = {  # kind -> (how long, pattern, what kube-apiserver says when it does not match)
    "Namespace": (
        63,
        _LABEL,
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
        "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
        f"regex used for validation is '{_LABEL}')",
    ),
    "Service": (
        63,
        _LABEL_1035,
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
        "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
        f"'abc-123', regex used for validation is '{_LABEL_1035}')",
    ),
}
_DEFAULT_NAME = (
    253,
    _SUBDOMAIN,
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    f"for validation is '{_SUBDOMAIN}')",
)


def name_problem(kind: str, name: str) -> str | None:
    """What kube-apiserver says of `name` as the name of a new `kind`, or None if it is fine."""
    longest, pattern, mismatch = _NAMES.get(kind, _DEFAULT_NAME)
    if len(name) > longest:
        return f"must be no more than {longest} characters"
    if re.fullmatch(pattern, name):
        return None
    if longest == 63 and "." in name and kind == "Namespace":
        return "must not contain dots"
    return mismatch
