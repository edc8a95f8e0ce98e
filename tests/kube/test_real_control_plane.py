"""The real control plane itself, and what only it can show the `KubeCluster` adapter.

Covers: the built components report v1.35.4 (kubectl and the apiserver's /version); kwok renews
each Node's Lease (so the node-lifecycle controller keeps the Nodes Ready); a Deployment
of examples/ui gets Pods on kwok Nodes that become Ready, and `workload_state` reads it ready from
the real Deployment controller's status; a Deployment whose Pods fit no Node stays not ready with
the adapter's message; a ServiceAccount token from the TokenRequest API authenticates, RBAC
refuses what no Role grants (ForbiddenError naming verb, resource and namespace) and allows it
once a Role and RoleBinding grant it; the fault handles: kube-apiserver killed and started again
on the same port with its data kept, etcd stopped and started, and a compaction that makes a
watch from before it expire (410 Expired).
"""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from support.polling import wait_until
from support.rollouts import example_rollout

from canary.core.model import GROUP, PLURAL, VERSION
from canary.kube.client import KubeCluster
from canary.kube.port import ForbiddenError, UnavailableError
from canary_sandbox.controlplane import ControlPlane
from canary_sandbox.stack import example

K8S_VERSION = "v1.35.4"


@pytest.fixture
def admin(control_plane: ControlPlane) -> KubeCluster:
    return KubeCluster.from_kubeconfig(str(control_plane.kubeconfig), qps=0)


def create(plane: ControlPlane, namespace: str, body: dict[str, Any]) -> None:
    body["metadata"]["namespace"] = namespace
    group = body["apiVersion"]
    prefix = "/api/v1" if group == "v1" else f"/apis/{group}"
    plural = {"Deployment": "deployments", "Role": "roles", "RoleBinding": "rolebindings",
              "ServiceAccount": "serviceaccounts"}[body["kind"]]  # fmt: skip
    plane.request("POST", f"{prefix}/namespaces/{namespace}/{plural}", body)


def test_every_component_is_the_pinned_release(control_plane: ControlPlane):
    shown = json.loads(control_plane.kubectl("version", "-o", "json").stdout)

    assert shown["clientVersion"]["gitVersion"] == K8S_VERSION
    assert shown["serverVersion"]["gitVersion"] == K8S_VERSION
    assert control_plane.request("GET", "/version")["gitVersion"] == K8S_VERSION


def test_kwok_renews_the_node_leases(control_plane: ControlPlane):
    """The heartbeat the node-lifecycle controller reads: without it every Node would turn
    NotReady after the grace period and its Pods would lose their Ready condition."""
    path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"

    def renewed() -> dict[str, str]:
        leases = control_plane.request("GET", path)["items"]
        return {lease["metadata"]["name"]: lease["spec"].get("renewTime", "") for lease in leases}

    wait_until(lambda: len(renewed()) == control_plane.nodes, "a Lease per Node", timeout=30.0)
    first = renewed()
    wait_until(lambda: all(renewed()[n] > first[n] for n in first), "renewals", timeout=60.0)

    assert sorted(first) == [f"kwok-node-{i}" for i in range(control_plane.nodes)]


def test_a_deployment_becomes_ready_on_kwok_nodes(
    control_plane: ControlPlane, real_namespace: str, admin: KubeCluster
):
    create(control_plane, real_namespace, example("deployment-v2"))

    wait_until(
        lambda: admin.workload_state(real_namespace, "Deployment", "ui-v2").ready,
        "ui-v2 ready",
        timeout=30.0,
    )
    state = admin.workload_state(real_namespace, "Deployment", "ui-v2")
    pods = control_plane.request("GET", f"/api/v1/namespaces/{real_namespace}/pods")["items"]
    deployment = control_plane.request(
        "GET", f"/apis/apps/v1/namespaces/{real_namespace}/deployments/ui-v2"
    )

    assert state.message == f"Deployment {real_namespace}/ui-v2 has 2 of 2 replicas ready"
    assert deployment["status"]["readyReplicas"] == 2
    assert len(pods) == 2
    assert {pod["status"]["phase"] for pod in pods} == {"Running"}
    assert all(pod["spec"]["nodeName"].startswith("kwok-node-") for pod in pods)


def test_a_deployment_that_fits_no_node_is_never_ready(
    control_plane: ControlPlane, real_namespace: str, admin: KubeCluster
):
    body = example("deployment-v2")
    body["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "none-has-it"}
    create(control_plane, real_namespace, body)

    def observed() -> bool:
        state = admin.workload_state(real_namespace, "Deployment", "ui-v2")
        return "replicas ready" in state.message

    wait_until(observed, "the Deployment controller's status", timeout=30.0)
    state = admin.workload_state(real_namespace, "Deployment", "ui-v2")
    pods = control_plane.request("GET", f"/api/v1/namespaces/{real_namespace}/pods")["items"]

    assert not state.ready
    assert state.message == f"Deployment {real_namespace}/ui-v2 has 0 of 2 replicas ready"
    assert {pod["status"]["phase"] for pod in pods} == {"Pending"}


def test_a_service_account_token_authenticates_and_rbac_decides(
    control_plane: ControlPlane, real_namespace: str, tmp_path: Path
):
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "canary"}}
    create(control_plane, real_namespace, sa)
    token = control_plane.create_token(real_namespace, "canary")
    kubeconfig = control_plane.write_kubeconfig(tmp_path / "sa", {"token": token})
    cluster = KubeCluster.from_kubeconfig(str(kubeconfig), qps=0)

    with pytest.raises(ForbiddenError) as refused:
        cluster.list_rollouts(real_namespace)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "read-rollouts"},
        "rules": [{"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["list"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "read-rollouts"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "read-rollouts"},
        "subjects": [{"kind": "ServiceAccount", "name": "canary", "namespace": real_namespace}],
    }  # fmt: skip
    create(control_plane, real_namespace, role)
    create(control_plane, real_namespace, binding)
    wait_until(lambda: _lists(cluster, real_namespace), "the RoleBinding to take effect")

    assert str(refused.value) == (
        f"the controller may not list rollouts in namespace {real_namespace}: "
        "grant it in the controller's Role"
    )
    assert token not in str(refused.value)
    with pytest.raises(ForbiddenError, match=r"may not patch rollouts/status"):
        cluster.patch_rollout_status(real_namespace, "ui", {"phase": "Progressing"})


def _lists(cluster: KubeCluster, namespace: str) -> bool:
    try:
        cluster.list_rollouts(namespace)
    except ForbiddenError:
        return False
    return True


# ------------------------------------------------------------------ fault handles
# Each uses its own control plane (`own_plane`): stopping parts of the session's one would
# disturb other tests.


def custom_api(plane: ControlPlane) -> client.CustomObjectsApi:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(plane.kubeconfig), client_configuration=configuration)
    return client.CustomObjectsApi(client.ApiClient(configuration))


def test_the_apiserver_killed_and_started_keeps_its_port_and_data(own_plane: ControlPlane):
    own_plane.create_namespace("kept")
    cluster = KubeCluster.from_kubeconfig(str(own_plane.kubeconfig), qps=0, retries=0, timeout=2)
    custom_api(own_plane).create_namespaced_custom_object(
        GROUP, VERSION, "kept", PLURAL, example_rollout(namespace="kept")
    )
    before = own_plane.pid("kube-apiserver")

    own_plane.kill_apiserver()
    with pytest.raises(UnavailableError):
        cluster.get_rollout("kept", "ui")
    own_plane.start_apiserver()

    assert own_plane.pid("kube-apiserver") not in (None, before)
    assert cluster.get_rollout("kept", "ui")["metadata"]["name"] == "ui"


def test_etcd_stopped_and_started(own_plane: ControlPlane):
    own_plane.create_namespace("etcd-down")
    own_plane.stop_etcd()
    assert own_plane.pid("etcd") is None
    own_plane.start_etcd()

    wait_until(lambda: own_plane._get_ok(f"{own_plane.url}/readyz"), "the apiserver ready")
    assert own_plane.request("GET", "/api/v1/namespaces/etcd-down")["metadata"]["name"]


def test_a_watch_from_before_a_compaction_expires(own_plane: ControlPlane):
    own_plane.create_namespace("compacted")
    custom = custom_api(own_plane)
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, "compacted", PLURAL)
    old = listed["metadata"]["resourceVersion"]
    for name in ("a", "b", "c"):
        custom.create_namespaced_custom_object(
            GROUP, VERSION, "compacted", PLURAL, example_rollout(name, namespace="compacted")
        )

    revision = own_plane.compact_etcd()
    own_plane.restart_apiserver()  # its watch cache starts from etcd's compacted history
    answers: list[dict[str, Any]] = []

    def watched() -> bool:  # 429 while the restarted apiserver's watch cache initialises
        try:
            answers.append(
                own_plane.request(
                    "GET",
                    f"/apis/{GROUP}/{VERSION}/namespaces/"
                    f"compacted/{PLURAL}?watch=1&resourceVersion={old}&timeoutSeconds=5",
                )
            )
        except urllib.error.HTTPError as error:
            assert error.code == 429, error
            return False
        return True

    wait_until(watched, "a watch answer", timeout=30.0)
    [answer] = answers

    assert revision > int(old)
    assert answer["type"] == "ERROR"
    assert answer["object"]["code"] == 410
    assert answer["object"]["reason"] == "Expired"
