"""Just enough Kubernetes protobuf to read what `kubectl create namespace|configmap|secret` sends.

kubectl >= 1.32 sends typed built-in objects as `application/vnd.kubernetes.protobuf`: the
magic `k8s\\0`, then a `runtime.Unknown` {typeMeta, raw}. We decode ObjectMeta and the few
kinds above into the JSON shape; anything else is 415 Unsupported Media Type.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from canary.core.objects import Obj
from canary_sandbox.errors import ApiError

Fields = dict[int, list[int | bytes]]
PROTOBUF = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


def _fields(data: bytes) -> Fields:
    fields: Fields = {}
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        value: int | bytes
        if wire_type == 0:
            value, position = _varint(data, position)
        elif wire_type == 2:
            length, position = _varint(data, position)
            value, position = data[position : position + length], position + length
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            value, position = data[position : position + size], position + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        fields.setdefault(number, []).append(value)
    return fields


def _bytes(fields: Fields, number: int) -> bytes | None:
    values = fields.get(number)
    return values[-1] if values and isinstance(values[-1], bytes) else None


def _text(fields: Fields, number: int) -> str | None:
    raw = _bytes(fields, number)
    return raw.decode() if raw is not None else None


def _texts(fields: Fields, number: int) -> list[str]:
    return [value.decode() for value in fields.get(number, []) if isinstance(value, bytes)]


def _map(fields: Fields, number: int, decode: Callable[[bytes], Any]) -> Obj:
    entries = {}
    for entry in fields.get(number, []):
        if isinstance(entry, bytes):
            pair = _fields(entry)
            entries[_text(pair, 1) or ""] = decode(_bytes(pair, 2) or b"")
    return entries


def _object_meta(data: bytes) -> Obj:
    fields = _fields(data)
    metadata: Obj = {}
    for number, key in ((1, "name"), (2, "generateName"), (3, "namespace")):
        text = _text(fields, number)
        if text:
            metadata[key] = text
    for number, key in ((11, "labels"), (12, "annotations")):
        mapping = _map(fields, number, bytes.decode)
        if mapping:
            metadata[key] = mapping
    if finalizers := _texts(fields, 14):
        metadata["finalizers"] = finalizers
    return metadata


def _base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _namespace(fields: Fields) -> Obj:
    spec = _fields(_bytes(fields, 2) or b"")
    return {"spec": {"finalizers": _texts(spec, 1)}} if _texts(spec, 1) else {}


def _config_map(fields: Fields) -> Obj:
    body: Obj = {}
    if data := _map(fields, 2, bytes.decode):
        body["data"] = data
    if binary := _map(fields, 3, _base64):
        body["binaryData"] = binary
    return body


def _secret(fields: Fields) -> Obj:
    body: Obj = {}
    if data := _map(fields, 2, _base64):
        body["data"] = data
    if secret_type := _text(fields, 3):
        body["type"] = secret_type
    if string_data := _map(fields, 4, bytes.decode):
        body["stringData"] = string_data
    return body


DECODERS: dict[str, Callable[[Fields], Obj]] = {
    "Namespace": _namespace,
    "ConfigMap": _config_map,
    "Secret": _secret,
}


def decode_object(data: bytes) -> Obj:
    """A protobuf-encoded built-in object as its JSON dict; 415 for kinds we cannot read."""
    unsupported = ApiError(
        415,
        "UnsupportedMediaType",
        "the sandbox API server reads protobuf only for Namespace, ConfigMap and Secret; "
        "send application/json",
    )
    if not data.startswith(MAGIC):
        raise unsupported
    try:
        envelope = _fields(data[len(MAGIC) :])
        type_meta = _fields(_bytes(envelope, 1) or b"")
        kind = _text(type_meta, 2) or ""
        if kind not in DECODERS:
            raise unsupported
        fields = _fields(_bytes(envelope, 2) or b"")
        body = DECODERS[kind](fields)
        metadata = _object_meta(_bytes(fields, 1) or b"")
    except (IndexError, ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, "BadRequest", f"cannot decode protobuf body: {error}") from error
    return {"apiVersion": _text(type_meta, 1) or "v1", "kind": kind, "metadata": metadata, **body}
