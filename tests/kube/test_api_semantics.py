"""API semantics where the sandbox once differed from kube-apiserver, held to it by running each
test against both (docs/sandbox-vs-real.md lists what still differs, with the reason).

Covers: a body whose apiVersion or kind differs from the URL's is refused, with the real
messages; an update (PUT) of a custom resource must carry a resourceVersion; a field selector on
a field custom resources do not index is a 400; several schema errors in the real order
(an object's missing fields after its properties' errors); deleting an object that has
finalizers answers 200, marks it and moves its generation; no finalizer may be added once
deletion started; removing the last finalizer deletes it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cluster_helpers import ISTIO_GROUP, create_rollout
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from support.controlplane import ON_BOTH
from support.rollouts import example_rollout

from canary.core.model import GROUP, PLURAL, VERSION
from canary_sandbox.stack import example

pytestmark = ON_BOTH


def refused(call: Any) -> tuple[int, str]:
    with pytest.raises(ApiException) as raised:
        call()
    body = json.loads(raised.value.body)
    return int(raised.value.status), str(body["message"])


def merge(custom: client.CustomObjectsApi, namespace: str, body: dict[str, Any]) -> Any:
    return custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "ui", body, _content_type="application/merge-patch+json"
    )


def test_an_api_version_other_than_the_urls_is_refused(
    custom: client.CustomObjectsApi, namespace: str
):
    body = example("virtualservice")  # written as networking.istio.io/v1beta1
    body["metadata"]["namespace"] = namespace

    code, message = refused(
        lambda: custom.create_namespaced_custom_object(
            ISTIO_GROUP, "v1", namespace, "virtualservices", body
        )
    )

    assert code == 400
    assert message == (
        "the API version in the data (networking.istio.io/v1beta1) does not match the expected "
        "API version (networking.istio.io/v1)"
    )


def test_a_kind_other_than_the_urls_is_invalid(custom: client.CustomObjectsApi, namespace: str):
    body = example_rollout(namespace=namespace)
    body["kind"] = "Canary"

    code, message = refused(lambda: create_rollout(custom, body))

    assert code == 422
    assert (
        message
        == 'Canary.canary.dev "ui" is invalid: kind: Invalid value: "Canary": must be Rollout'
    )


def test_an_update_without_resource_version_is_invalid(
    custom: client.CustomObjectsApi, namespace: str
):
    create_rollout(custom, example_rollout(namespace=namespace))

    code, message = refused(
        lambda: custom.replace_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "ui", example_rollout(namespace=namespace)
        )
    )

    assert code == 422
    assert message == (
        'rollouts.canary.dev "ui" is invalid: metadata.resourceVersion: Invalid value: 0: '
        "must be specified for an update"
    )


def test_an_unsupported_field_selector_is_refused(custom: client.CustomObjectsApi, namespace: str):
    create_rollout(custom, example_rollout(namespace=namespace))

    by_name = custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, field_selector="metadata.name=ui"
    )
    code, message = refused(
        lambda: custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, field_selector="spec.host=ui"
        )
    )

    assert [item["metadata"]["name"] for item in by_name["items"]] == ["ui"]
    assert (code, message) == (400, "field label not supported: spec.host")


def test_schema_errors_come_in_the_servers_order(custom: client.CustomObjectsApi, namespace: str):
    bad = example_rollout(namespace=namespace)
    bad["spec"]["analysis"]["failureLimit"] = 0
    del bad["spec"]["host"]

    code, message = refused(lambda: create_rollout(custom, bad))

    assert code == 422
    assert message == (
        'Rollout.canary.dev "ui" is invalid: [spec.analysis.failureLimit: Invalid value: 0: '
        "spec.analysis.failureLimit in body should be greater than or equal to 1, "
        "spec.host: Required value, <nil>: Invalid value: null: some validation rules were not "
        "checked because the object was invalid; correct the existing errors to complete "
        "validation]"
    )


def test_finalizers_hold_a_deletion_and_move_its_generation(
    custom: client.CustomObjectsApi, namespace: str
):
    create_rollout(custom, example_rollout(namespace=namespace))
    merge(custom, namespace, {"metadata": {"finalizers": ["canary.dev/route"]}})

    deleted = custom.delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "ui", _preload_content=False
    )
    marked = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "ui")
    code, message = refused(
        lambda: merge(custom, namespace, {"metadata": {"finalizers": ["canary.dev/route", "x"]}})
    )
    merge(custom, namespace, {"metadata": {"finalizers": None}})
    gone = refused(
        lambda: custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "ui")
    )

    assert deleted.status == 200
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["generation"] == 2
    assert code == 422
    assert message == (
        'Rollout.canary.dev "ui" is invalid: metadata.finalizers: Forbidden: no new finalizers '
        'can be added if the object is being deleted, found new finalizers []string{"x"}'
    )
    assert gone[0] == 404


SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("UI", SUBDOMAIN),
        ("ui_v2", SUBDOMAIN),
        ("-ui", SUBDOMAIN),
        ("ui..v2", SUBDOMAIN),
        ("a" * 254, "must be no more than 253 characters"),
    ],
)
def test_a_name_the_real_apiserver_rejects_is_rejected(
    custom: client.CustomObjectsApi, namespace: str, name: str, problem: str
):
    """Issue 14: the sandbox accepted names a real apiserver rejects."""
    code, message = refused(
        lambda: create_rollout(custom, example_rollout(name=name, namespace=namespace))
    )
    assert code == 422
    assert message == (
        f'Rollout.canary.dev "{name}" is invalid: metadata.name: Invalid value: "{name}": {problem}'
    )


def test_a_long_rollout_name_with_dots_is_accepted(custom: client.CustomObjectsApi, namespace: str):
    name = "ui.v2-" + "b" * 200
    assert create_rollout(custom, example_rollout(name=name, namespace=namespace)) is not None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("shop.v2", "must not contain dots"),
        (
            "Shop",
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
            "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ),
    ],
)
def test_a_namespace_name_is_a_dns_label(
    custom: client.CustomObjectsApi, namespace: str, name: str, problem: str
):
    core = client.CoreV1Api(custom.api_client)
    code, message = refused(lambda: core.create_namespace({"metadata": {"name": name}}))
    assert code == 422
    assert (
        message
        == f'Namespace "{name}" is invalid: metadata.name: Invalid value: "{name}": {problem}'
    )
