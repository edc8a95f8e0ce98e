"""Istio's own CRD schemas, for checking offline that every object we plan is one Istio accepts.

The schemas come from the `istio.io/api` Go module at one pinned version (its
`kubernetes/customresourcedefinitions.gen.yaml`), fetched by `go mod download` into the Go
module cache, outside the repository; nothing of it is copied here. `istio_violations(obj)`
checks an object as a kube-apiserver would: the OpenAPI v3 schema (with the sandbox's
structural validator), no field the schema would prune, and the CEL rules
(`x-kubernetes-validations`) those CRDs carry. A CEL rule this module does not know fails the
check, so a version bump cannot skip a rule silently.

Without `go`, or when the module cannot be downloaded, the test is skipped locally and fails
under CI=true, like `require_binary`.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from canary_sandbox.schema import prune_and_default, render_path, validate
from support.binaries import require_binary

ISTIO_API_MODULE = "istio.io/api"
ISTIO_API_VERSION = "v1.32.0"
CRD_FILE = "kubernetes/customresourcedefinitions.gen.yaml"

Json = dict[str, Any]


def istio_crd_file() -> Path:
    """The CRD file of the pinned istio.io/api module, downloaded once into the module cache."""
    return _download(require_binary("go"))


@functools.cache
def _download(go: str) -> Path:
    module = f"{ISTIO_API_MODULE}@{ISTIO_API_VERSION}"
    try:
        result = subprocess.run(
            [go, "mod", "download", "-json", module],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd="/",  # outside any module: `go mod download` then takes module@version as is
        )
        directory = json.loads(result.stdout).get("Dir") if result.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired, ValueError) as error:
        directory, result = None, None
        _unavailable(f"`go mod download {module}` failed: {error}")
    path = Path(directory) / CRD_FILE if directory else None
    if path is None or not path.is_file():
        detail = result.stderr.strip() if result is not None else ""
        _unavailable(f"`go mod download {module}` gave no {CRD_FILE} ({detail or 'no output'})")
    assert path is not None
    return path


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires Istio's CRDs from the Go module proxy.")
    pytest.skip(reason)


@functools.cache
def _schemas(path: Path) -> dict[tuple[str, str], Json]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    found: dict[tuple[str, str], Json] = {}
    with path.open() as stream:
        for crd in yaml.load_all(stream, Loader=loader):
            if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
                continue
            kind = crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                found[(kind, version["name"])] = version["schema"]["openAPIV3Schema"]
    return found


def istio_schema(kind: str, version: str = "v1") -> Json:
    """The openAPIV3Schema of `kind` (VirtualService, DestinationRule, ...) at `version`."""
    return _schemas(istio_crd_file())[(kind, version)]


def istio_violations(obj: Json) -> list[str]:
    """Why Istio's CRD would refuse (or prune part of) `obj`; empty when it accepts it whole."""
    version = str(obj.get("apiVersion", "networking.istio.io/v1")).rsplit("/", 1)[-1]
    schema = istio_schema(str(obj.get("kind")), version)
    problems = [f"{c['field']}: {c['message']}" for c in validate(obj, schema)]
    _, pruned = prune_and_default(obj, schema)
    problems += [f"{field}: unknown field, the API server would drop it" for field in pruned]
    problems += _cel_violations(obj, schema, ())
    return problems


# ---------------------------------------------------------------- the CEL rules of Istio's CRDs

_DURATION = re.compile(r"^(?:(\d+(?:\.\d*)?|\.\d+)(h|m|s|ms|us|µs|ns))+$")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def _duration_seconds(text: Any) -> float | None:
    if not isinstance(text, str) or not _DURATION.match(text):
        return None
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)", text)
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _at_least_1ms(value: Any) -> bool:
    seconds = _duration_seconds(value)
    return seconds is not None and seconds >= 1e-3


CEL_RULES: dict[str, Callable[[Any], bool]] = {
    "duration(self) >= duration('1ms')": _at_least_1ms,
    '!self.contains("*")': lambda value: "*" not in value,
    'self.all(key, !key.contains("*"))': lambda value: all("*" not in key for key in value),
    "self.all(key, key.size() != 0)": lambda value: all(len(key) != 0 for key in value),
}


def _cel_violations(value: Any, schema: Json, path: tuple[str | int, ...]) -> list[str]:
    problems = []
    for rule in schema.get("x-kubernetes-validations", []):
        check = CEL_RULES.get(rule["rule"])
        if check is None:
            problems.append(f"{render_path(path)}: CEL rule {rule['rule']!r} is not known here")
        elif not check(value):
            problems.append(f"{render_path(path)}: {rule.get('message', rule['rule'])}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, additional if isinstance(additional, dict) else None)
            if sub is not None:
                problems += _cel_violations(item, sub, (*path, key))
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            problems += _cel_violations(item, schema["items"], (*path, index))
    return problems
