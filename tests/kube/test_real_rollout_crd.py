"""The Rollout CRD (crds/rollout.yaml, generated from canary/core/model.py) as kube-apiserver
serves it, through the real kubectl.

Covers: every status field the controller can write survives the structural schema's pruning
(a status with every field of RolloutStatus set, written as the controller writes it), and a
field outside the schema is pruned; the server applies no defaults of its own (the model's
defaults are the controller's); validation errors as kubectl shows them, and unknown spec fields
refused (kubectl validates strictly); `kubectl explain`; the printer columns; the status
subresource: status ignored in a spec write, generation moved by spec changes only.
"""

from __future__ import annotations

import json
import subprocess
import types
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
import yaml
from cluster_helpers import create_rollout
from kubernetes import client
from pydantic import BaseModel
from support.controlplane import ON_BOTH
from support.polling import wait_until
from support.rollouts import example_rollout

from canary.core.model import Rollout
from canary.core.status import RolloutStatus
from canary.kube.client import KubeCluster
from canary_sandbox.controlplane import ControlPlane
from canary_sandbox.stack import example_release

WHEN = "2026-03-01T12:00:00Z"


def maximal(annotation: Any) -> Any:
    """A value of `annotation` with every optional field present (models recursively)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return maximal(args[0])
    if origin in (Union, types.UnionType):
        return maximal(next(arg for arg in args if arg is not type(None)))
    if origin is Literal:
        return args[-1]
    if origin is list:
        return [maximal(args[0])]
    if origin is dict:
        return {"key": maximal(args[1])}
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return list(annotation)[-1].value
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {name: maximal(field.annotation) for name, field in annotation.model_fields.items()}
    simple = {bool: True, int: 7, float: 12.5, str: "text", timedelta: "30s"}
    if annotation in simple:
        return simple[annotation]
    if getattr(annotation, "__name__", "") == "datetime":
        return WHEN
    raise AssertionError(f"no maximal value for {annotation!r}: extend maximal()")


def maximal_status() -> dict[str, Any]:
    """Every field of RolloutStatus set, as the controller sends it (`wire()`); the last valid
    spec is a whole real one (a spec made of maximal values is not valid)."""
    fields = maximal(RolloutStatus)
    fields["last_valid_spec"] = example_release()["spec"]
    wire: dict[str, Any] = RolloutStatus.model_validate(fields).wire()
    return wire


def kubectl_in(plane: ControlPlane, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return plane.kubectl("-n", namespace, *args, check=False)


def ok(plane: ControlPlane, namespace: str, *args: str) -> str:
    result = kubectl_in(plane, namespace, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def merge_patch(plane: ControlPlane, namespace: str, patch: str, status: bool = False) -> None:
    """`kubectl patch cro ui --type=merge` (of the status subresource when `status`)."""
    subresource = ["--subresource=status"] if status else []
    ok(plane, namespace, "patch", "cro", "ui", *subresource, "--type=merge", "-p", patch)


def apply(plane: ControlPlane, namespace: str, body: dict[str, Any], tmp_path: Path) -> str:
    path = tmp_path / f"{body['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(body))
    result = kubectl_in(plane, namespace, "apply", "-f", str(path))
    return result.stdout + result.stderr


# ------------------------------------------------------------------ pruning and defaults


def test_the_maximal_status_is_every_field_of_the_model():
    status = maximal_status()

    assert len(status) == len(RolloutStatus.model_fields)
    assert status["lastAnalysis"]["gates"][0]["query"] == "text"
    assert status["conditions"][0]["observedGeneration"] == 7


@ON_BOTH
def test_every_status_field_survives_a_round_trip(
    cluster: KubeCluster, custom: client.CustomObjectsApi, namespace: str
):
    create_rollout(custom, example_rollout(namespace=namespace))
    status = maximal_status()

    written = cluster.patch_rollout_status(namespace, "ui", status)
    read = cluster.get_rollout(namespace, "ui")

    assert written["status"] == status
    assert read["status"] == status
    assert Rollout.model_validate(read).status.wire() == status


@ON_BOTH
def test_a_status_field_outside_the_schema_is_pruned(
    cluster: KubeCluster, custom: client.CustomObjectsApi, namespace: str
):
    create_rollout(custom, example_rollout(namespace=namespace))

    analysis = {"bogus": 2, "time": WHEN, "outcome": "pass", "countedAs": "pass"}
    written = cluster.patch_rollout_status(
        namespace, "ui", {"phase": "Paused", "notInTheSchema": 1, "lastAnalysis": analysis}
    )

    assert written["status"] == {
        "phase": "Paused",
        "lastAnalysis": {"time": WHEN, "outcome": "pass", "countedAs": "pass"},
    }


@ON_BOTH
def test_the_server_applies_no_defaults(
    cluster: KubeCluster, custom: client.CustomObjectsApi, namespace: str
):
    minimal = example_rollout(namespace=namespace)
    spec = minimal["spec"]
    for optional in ("versionLabel", "prometheus", "promotion", "notifications"):
        spec.pop(optional, None)
    spec["analysis"] = {"gates": [{"name": "success-rate", "successRate": {"min": 99}}]}

    created = create_rollout(custom, minimal)
    parsed = Rollout.model_validate(created)

    assert created["spec"] == spec
    assert "status" not in created
    assert created["metadata"]["generation"] == 1
    assert parsed.spec.analysis.failure_limit == 2  # the model's default, not the server's
    assert parsed.spec.version_label == "version"


# ------------------------------------------------------------------ kubectl


@pytest.fixture
def plane(control_plane: ControlPlane) -> ControlPlane:
    return control_plane


def test_validation_errors_as_kubectl_shows_them(
    plane: ControlPlane, real_namespace: str, tmp_path: Path
):
    bad = example_rollout(namespace=real_namespace)
    bad["spec"]["analysis"]["failureLimit"] = 0
    bad["spec"]["canary"]["version"] = "v2!"
    del bad["spec"]["host"]

    shown = apply(plane, real_namespace, bad, tmp_path)

    header, *errors = shown.splitlines()

    assert header == 'The Rollout "ui" is invalid: '
    assert sorted(errors[:2]) == [  # in no promised order: the server walks a Go map
        "* spec.analysis.failureLimit: Invalid value: 0: "
        "spec.analysis.failureLimit in body should be greater than or equal to 1",
        '* spec.canary.version: Invalid value: "v2!": spec.canary.version in body should match '
        "'^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$'",
    ]
    assert errors[2:] == [  # an object's missing fields last, then the CEL rules not run
        "* spec.host: Required value",
        "* <nil>: Invalid value: null: some validation rules were not checked because the "
        "object was invalid; correct the existing errors to complete validation",
    ]
    assert kubectl_in(plane, real_namespace, "get", "cro", "ui").returncode != 0


def test_an_unknown_spec_field_is_refused_not_pruned(
    plane: ControlPlane, real_namespace: str, tmp_path: Path
):
    bad = example_rollout(namespace=real_namespace)
    bad["spec"]["analysis"]["failurelimit"] = 3  # a typo of failureLimit

    shown = apply(plane, real_namespace, bad, tmp_path)

    assert shown == (
        f'Error from server (BadRequest): error when creating "{tmp_path / "ui.yaml"}": '
        'Rollout in version "v1alpha1" cannot be handled as a Rollout: '
        'strict decoding error: unknown field "spec.analysis.failurelimit"\n'
    )
    assert kubectl_in(plane, real_namespace, "get", "cro", "ui").returncode != 0


def test_kubectl_explain_shows_the_fields_and_their_descriptions(
    plane: ControlPlane, real_namespace: str
):
    def explain() -> subprocess.CompletedProcess[str]:
        return kubectl_in(plane, real_namespace, "explain", "rollout.spec.virtualService.route")

    wait_until(lambda: explain().returncode == 0, "the Rollout schema in the OpenAPI")
    route = explain().stdout
    failure_limit = ok(plane, real_namespace, "explain", "cro.spec.analysis.failureLimit")

    assert "GROUP:      canary.dev" in route
    assert "FIELD: route <string>" in route
    assert "The name of the http route to steer; leave it out when the VirtualService" in route
    assert "FIELD: failureLimit <integer>" in failure_limit


def test_printer_columns(plane: ControlPlane, real_namespace: str, tmp_path: Path):
    shown = apply(plane, real_namespace, example_rollout(namespace=real_namespace), tmp_path)
    assert "rollout.canary.dev/ui created" in shown
    status = {
        "phase": "Progressing",
        "stage": "split",
        "canaryWeight": 25,
        "stableVersion": "v1",
        "canaryVersion": "v2",
    }
    merge_patch(plane, real_namespace, json.dumps({"status": status}), status=True)

    header, row = ok(plane, real_namespace, "get", "cro").splitlines()
    listed = ok(plane, real_namespace, "get", "canary", "-o", "name")  # the category

    assert header.split() == ["NAME", "PHASE", "STAGE", "WEIGHT", "STABLE", "CANARY", "AGE"]
    assert row.split()[:6] == ["ui", "Progressing", "split", "25", "v1", "v2"]
    assert listed.strip() == "rollout.canary.dev/ui"


def test_status_is_a_subresource(plane: ControlPlane, real_namespace: str, tmp_path: Path):
    apply(plane, real_namespace, example_rollout(namespace=real_namespace), tmp_path)

    merge_patch(plane, real_namespace, '{"status": {"phase": "Succeeded"}}')
    after_spec_write = json.loads(ok(plane, real_namespace, "get", "cro", "ui", "-o", "json"))
    merge_patch(plane, real_namespace, '{"status": {"phase": "Paused"}}', status=True)
    after_status_write = json.loads(ok(plane, real_namespace, "get", "cro", "ui", "-o", "json"))
    merge_patch(plane, real_namespace, '{"spec": {"canary": {"version": "v3"}}}')
    after_spec_change = json.loads(ok(plane, real_namespace, "get", "cro", "ui", "-o", "json"))

    assert "status" not in after_spec_write  # a status in a write of the resource is dropped
    assert after_status_write["status"] == {"phase": "Paused"}
    assert after_status_write["metadata"]["generation"] == 1  # status writes move no generation
    assert after_spec_change["metadata"]["generation"] == 2
    assert after_spec_change["status"] == {"phase": "Paused"}


@pytest.mark.parametrize(
    ("patch", "shown"),
    [
        ({"stages": {"split": {"steps": [50, 25]}}}, "spec.stages.split.steps: Invalid value: "
         "steps must strictly increase, e.g. [10, 25, 50, 75, 100]"),
        ({"stages": {"split": {"steps": None, "stepWeight": 30, "maxWeight": 20}}},
         "spec.stages.split: Invalid value: stepWeight must not exceed maxWeight"),
        ({"stages": {"mirror": {"duration": "0s"}}},
         'spec.stages.mirror.duration: Invalid value: "0s": must be longer than 0s'),
        ({"analysis": {"interval": "500ms"}},
         'spec.analysis.interval: Invalid value: "500ms": must be at least 1s'),
        ({"canary": {"subset": "stable"}}, "spec: Invalid value: stable.subset and "
         "canary.subset must name two different DestinationRule subsets"),
        ({"analysis": {"gates": [{"name": "x", "query": "up"}]}}, "spec.analysis.gates[0]: "
         "Invalid value: a query gate needs a threshold: give min, max or both"),
        # the gaps a server-side dry run found: each now has its CEL twin
        ({"analysis": {"gates": [{"name": "x", "successRate": {"min": 99}}] * 2}},
         "spec.analysis: Invalid value: every gate and webhook needs a name of its own"),
        ({"stages": {"headerCanary": {"match": [{"uri": {"exact": "/", "prefix": "/"}}]}}},
         "spec.stages.headerCanary.match[0].uri: Invalid value: a string match takes exactly "
         "one of exact, prefix or regex"),
        ({"stages": {"headerCanary": {"match": [{"name": "nothing"}]}}},
         "spec.stages.headerCanary.match[0]: Invalid value: an empty match would send every "
         "request to the canary"),
        ({"prometheus": {"url": "http://127.0.0.1:9090", "auth": {
            "bearerToken": {"env": "T"},
            "basic": {"username": {"env": "U"}, "password": {"env": "P"}}}}},
         "spec.prometheus.auth: Invalid value: give one of bearerToken or basic, not both"),
        ({"prometheus": {"url": "http://127.0.0.1:9090", "auth": {
            "bearerToken": {"env": "T", "file": "/t"}}}},
         "spec.prometheus.auth.bearerToken: Invalid value: give exactly one of file or env"),
        ({"analysis": {"webhooks": [{"name": "hold", "type": "pre-stage",
                                     "url": "http://127.0.0.1:9/"}]}},
         "spec.analysis.webhooks[0]: Invalid value: pre-stage and confirm-promotion webhooks "
         "need the stage they run before"),
    ],
)  # fmt: skip
def test_the_server_refuses_what_the_controller_refuses(
    plane: ControlPlane, real_namespace: str, tmp_path: Path, patch: dict[str, Any], shown: str
):
    """Issue 14: `kubectl patch ... steps: [50,25]` once returned 0 and froze a release."""
    apply(plane, real_namespace, example_rollout(namespace=real_namespace), tmp_path)
    result = kubectl_in(
        plane, real_namespace, "patch", "cro", "ui", "--type=merge",
        "-p", json.dumps({"spec": patch}),
    )  # fmt: skip
    assert result.returncode == 1
    assert shown in result.stderr
    with pytest.raises(ValueError):  # ... and the models refuse it too
        body = example_rollout(namespace=real_namespace)
        for key, value in patch.items():
            body["spec"][key] = {**body["spec"].get(key, {}), **value}
        Rollout.model_validate(body)
