"""Values checked against a CRD's structural schema where Python and JSON disagree, on both API
servers: the `widgets` test CRD (sandbox_helpers.WIDGET_CRD), installed on the real control
plane too, so that the sandbox's validator (canary_sandbox/schema.py) is held to kube-apiserver's.

Aspects: 2.0 in an integer field is an integer and 2.5 is not; a boolean in an integer field or
in an integer-or-string field is a type error (Python's True == 1 must not leak through), the
only cause reported for that field, except that true or 1 in a string enum is also an
unsupported value (the enum is checked by value after a failed type check); an enum compares
values exactly; an invalid object is refused (422) before its name is found taken (409); the
messages are kube-apiserver's.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.error import HTTPError

import pytest
from cluster_helpers import Backend
from kubernetes import client
from kubernetes.client.rest import ApiException
from sandbox_helpers import WIDGET_CRD, WIDGET_GROUP, WIDGET_PLURAL, WIDGET_VERSION, widget
from support.controlplane import ON_BOTH
from support.polling import wait_until

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


@pytest.fixture
def widgets(backend: Backend, custom: client.CustomObjectsApi) -> str:
    """The namespace to create Widgets in, with the CRD served (the sandbox has it already)."""
    if backend.plane is not None:
        plane = backend.plane
        try:
            plane.request("POST", CRD_PATH, copy.deepcopy(WIDGET_CRD))
        except HTTPError as error:
            if error.code != 409:  # installed by an earlier test of this session
                raise

        def served() -> bool:
            try:
                custom.list_namespaced_custom_object(
                    WIDGET_GROUP, WIDGET_VERSION, backend.namespace, WIDGET_PLURAL
                )
            except ApiException:
                return False
            return True

        wait_until(served, "the widgets CRD served")
    return backend.namespace if backend.plane is not None else "default"


def create(
    custom: client.CustomObjectsApi, namespace: str, name: str = "ui", **spec: Any
) -> dict[str, Any]:
    body = widget(name, **spec)
    body["metadata"]["namespace"] = namespace
    created: dict[str, Any] = custom.create_namespaced_custom_object(
        WIDGET_GROUP, WIDGET_VERSION, namespace, WIDGET_PLURAL, body
    )
    return created


def refusal(custom: client.CustomObjectsApi, namespace: str, **spec: Any) -> list[tuple[str, str]]:
    """The (field, reason) of every cause of the 422 that creating a Widget gets."""
    with pytest.raises(ApiException) as caught:
        create(custom, namespace, **spec)
    assert caught.value.status == 422, caught.value.body
    causes = json.loads(caught.value.body)["details"]["causes"]
    return [(cause["field"], cause["reason"]) for cause in causes]


@ON_BOTH
def test_an_integral_float_is_an_integer(custom: client.CustomObjectsApi, widgets: str) -> None:
    created = create(custom, widgets, "two", weight=2.0, analysis={"failureLimit": 3.0})
    assert created["spec"]["weight"] == 2 and created["spec"]["analysis"]["failureLimit"] == 3
    assert refusal(custom, widgets, weight=2.5) == [("spec.weight", "FieldValueTypeInvalid")]


@ON_BOTH
@pytest.mark.parametrize("value", [True, 1])
def test_an_enum_of_strings_given_another_type_is_both_errors(
    custom: client.CustomObjectsApi, widgets: str, value: object
) -> None:
    """kube-apiserver checks an enum by value even after the type check failed."""
    assert refusal(custom, widgets, mode=value) == [
        ("spec.mode", "FieldValueTypeInvalid"),
        ("spec.mode", "FieldValueNotSupported"),
    ]


@ON_BOTH
@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"weight": True}, "spec.weight"),
        ({"port": True}, "spec.port"),
        ({"tags": {"a": "b"}}, "spec.tags"),
        ({"labels": ["a"]}, "spec.labels"),
        ({"ratio": "1"}, "spec.ratio"),
    ],
)
def test_a_value_of_another_json_type_is_only_a_type_error(
    custom: client.CustomObjectsApi, widgets: str, spec: dict[str, Any], field: str
) -> None:
    assert refusal(custom, widgets, **spec) == [(field, "FieldValueTypeInvalid")]


@ON_BOTH
def test_an_enum_compares_values(custom: client.CustomObjectsApi, widgets: str) -> None:
    assert create(custom, widgets, "passing", mode="pass")["spec"]["mode"] == "pass"
    assert refusal(custom, widgets, mode="Pass") == [("spec.mode", "FieldValueNotSupported")]


@ON_BOTH
def test_an_invalid_object_is_refused_before_its_name_is_looked_up(
    custom: client.CustomObjectsApi, widgets: str
) -> None:
    create(custom, widgets)
    assert refusal(custom, widgets, weight=500) == [("spec.weight", "FieldValueInvalid")]
