"""Least privilege and secrets, checked against what the controller really does, on the sandbox
(which records every request) and on the real control plane (which enforces RBAC).

Covers: every API request the controller makes during a whole release (finalizer, status,
VirtualService and DestinationRule updates, Deployment readiness, Events, the leader Lease, a
request annotation, deletion) is allowed by deploy/'s ClusterRole and leader-election Role, and
those grant nothing beyond that list; the namespace-scoped variant grants the same in one
namespace; the Deployment runs as non-root with a read-only root filesystem; a Prometheus
bearer token the controller uses never appears in its logs, Events or the Rollout's status.
On the real control plane, with deploy/ (then deploy/namespaced) applied and the controller
running on its ServiceAccount's token (two of them, as deploy/ runs them): a whole release
(leader election, pause, resume, promote, an abort, the deletion) gets no 401 or 403, every
verb it used is granted; what deploy/ does not grant is refused (listing Secrets, creating or
patching Deployments, Leases outside its namespace, and for the namespaced install another
namespace and the cluster scope, whose Rollout the running namespaced controller never
touches).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.binaries import require_binary
from support.polling import wait_until

from canary_sandbox.client import SandboxClient
from canary_sandbox.controlplane import ControlPlane
from canary_sandbox.stack import (
    ControllerProcess,
    example_objects,
    example_release,
    sandbox_with_example,
    version_deployment,
)

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cr3t-token-4f9a1c"

# What the controller needs, by API group and resource. Changing this list is a security
# decision: say why in the commit.
NEEDED = {
    ("canary.dev", "rollouts"): {"get", "list", "watch", "patch"},
    ("canary.dev", "rollouts/status"): {"patch"},
    # list+watch feed the informer caches, so a tick that changes nothing reads nothing (#8)
    ("networking.istio.io", "virtualservices"): {"get", "list", "watch", "update"},
    ("networking.istio.io", "destinationrules"): {"get", "list", "watch", "update"},
    ("apps", "deployments"): {"get", "list", "watch"},
    ("", "events"): {"create", "patch"},
    ("", "secrets"): {"get"},  # notification receivers' URLs (issue #10); never list or watch
}
NEEDED_FOR_LEADER_ELECTION = {
    ("coordination.k8s.io", "leases"): {"get", "list", "create", "update", "delete"}
}


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def cluster_role() -> dict[str, Any]:
    return documents(ROOT / "deploy" / "clusterrole.yaml")[0]


def leader_role() -> dict[str, Any]:
    docs = documents(ROOT / "deploy" / "base" / "role-leader-election.yaml")
    return next(d for d in docs if d["kind"] == "Role")


def test_cluster_role_grants_exactly_what_is_needed() -> None:
    granted = grants(cluster_role())
    assert granted == NEEDED
    assert all("*" not in verbs for verbs in granted.values())


def test_leader_election_role_is_namespaced_and_minimal() -> None:
    role = leader_role()
    assert role["metadata"]["namespace"] == "canary-system"
    assert grants(role) == NEEDED_FOR_LEADER_ELECTION


def kustomize(directory: str) -> list[dict[str, Any]]:
    kubectl = require_binary("kubectl")
    built = subprocess.run(
        [kubectl, "kustomize", str(ROOT / directory)], capture_output=True, text=True, check=True
    )
    return [d for d in yaml.safe_load_all(built.stdout) if d]


def test_namespaced_variant_grants_the_same_in_one_namespace() -> None:
    objects = kustomize("deploy/namespaced")
    kinds = [o["kind"] for o in objects]
    assert "ClusterRole" not in kinds
    assert "ClusterRoleBinding" not in kinds
    role = next(
        o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == "canary-controller"
    )
    assert role["metadata"]["namespace"] == "shop"
    assert grants(role) == NEEDED
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert "--namespace=shop" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_cluster_install_has_the_crd_and_one_cluster_role() -> None:
    kinds = sorted(o["kind"] for o in kustomize("deploy"))
    assert kinds.count("CustomResourceDefinition") == 1
    assert kinds.count("ClusterRole") == 1


def test_the_container_is_non_root_with_a_read_only_root() -> None:
    deployment = documents(ROOT / "deploy" / "base" / "deployment.yaml")[0]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "USER 65532" in dockerfile


# ---------------------------------------------------------------- against the controller


class Unauthorized(BaseHTTPRequestHandler):
    """A Prometheus that wants a different token: records what it was sent, answers 401."""

    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        body = b'{"status":"error","errorType":"unauthorized","error":"bad token"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.do_GET()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def prometheus_401() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unauthorized)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


PATIENCE_SECONDS = 30.0  # a guard against hanging, never an assertion on speed


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = PATIENCE_SECONDS) -> Any:
    """`wait_until`, asking every 0.1 s (these tests read through the API)."""
    return wait_until(predicate, what, timeout, every=0.1)


def status(client: SandboxClient) -> dict[str, Any]:
    rollout = client.get("canary.dev/v1alpha1", "Rollout", "shop", "ui")
    return dict(rollout.get("status", {}))


def request(client: SandboxClient, action: str, request_id: str) -> None:
    path = client.path("canary.dev/v1alpha1", "Rollout", "shop", "ui")
    value = json.dumps({"action": action, "id": request_id})
    client.merge_patch(path, {"metadata": {"annotations": {"canary.dev/request": value}}})


def test_a_whole_release_stays_within_the_rbac_and_leaks_no_token(
    tmp_path: Path, prometheus_401: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARY_TEST_TOKEN", TOKEN)
    with sandbox_with_example(tmp_path) as (api, client):
        client.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "canary-system"}}
        )
        rollout = example_release()
        rollout["spec"]["analysis"]["interval"] = "1s"
        rollout["spec"]["promotion"]["settleDelay"] = "1s"
        rollout["spec"]["prometheus"] = {
            "url": prometheus_401,
            "timeout": "1s",
            "auth": {"bearerToken": {"env": "CANARY_TEST_TOKEN"}},
        }
        api.request_log.clear()
        controller = ControllerProcess(
            tmp_path / "kubeconfig",
            tmp_path / "controller.log",
            extra_args=("--leader-elect", "--lease-namespace", "canary-system"),
        )
        with controller:
            client.apply(rollout)
            wait_for(lambda: status(client).get("stage") == "mirror", "the mirror stage")
            # checks ran, with the token, and failed
            wait_for(lambda: Unauthorized.seen, "a check with the token")
            wait_for(lambda: status(client).get("lastAnalysis"), "a recorded check")
            status_with_errors = json.dumps(status(client))
            request(client, "promote-full", "r1")
            wait_for(lambda: status(client).get("phase") == "Succeeded", "the release to succeed")
            client.delete(client.path("canary.dev/v1alpha1", "Rollout", "shop", "ui"))
            listed = client.path("canary.dev/v1alpha1", "Rollout", "shop", "")
            wait_for(lambda: not client.request("GET", listed)["items"], "no Rollout left")
        used = requests_by_controller(api)
        events = client.request("GET", "/api/v1/namespaces/shop/events")["items"]
        logs = controller.logs()

    allowed = {**NEEDED, **NEEDED_FOR_LEADER_ELECTION}
    exercised = {key for key, verbs in used.items() if verbs & {"update", "patch", "create"}}
    assert {
        ("canary.dev", "rollouts"),
        ("canary.dev", "rollouts/status"),
        ("networking.istio.io", "virtualservices"),
        ("networking.istio.io", "destinationrules"),
        ("", "events"),
        ("coordination.k8s.io", "leases"),
    } <= exercised, used
    for (group, resource), verbs in used.items():
        assert verbs <= allowed.get((group, resource), set()), (group, resource, verbs)
    assert f"Bearer {TOKEN}" in Unauthorized.seen
    assert "401" in status_with_errors or "unauthor" in status_with_errors.lower()
    for where, text in (
        ("logs", logs),
        ("events", json.dumps(events)),
        ("status", status_with_errors),
    ):
        assert TOKEN not in text, f"the token leaked into the controller's {where}"
    assert "401" in logs or "401" in json.dumps(events) or "unauthor" in logs.lower()


def requests_by_controller(api: Any) -> dict[tuple[str, str], set[str]]:
    """(group, resource[/subresource]) -> verbs, from the sandbox's request log, without the
    test's own requests (they come from urllib, which sends no User-Agent of the client)."""
    used: dict[tuple[str, str], set[str]] = {}
    for record in api.request_log.records:
        if getattr(record, "user_agent", "").startswith("Python-urllib"):
            continue
        resource = record.resource + (f"/{record.subresource}" if record.subresource else "")
        used.setdefault((record.group, resource), set()).add(record.verb)
    return used


def test_a_namespaced_controller_releases_in_its_namespace_only(tmp_path: Path) -> None:
    with sandbox_with_example(tmp_path) as (_api, client):
        other = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}
        client.apply(other)
        elsewhere = example_release()
        elsewhere["metadata"]["namespace"] = "other"
        client.apply(elsewhere)
        rollout = example_release()
        rollout["spec"]["prometheus"] = {"url": "http://127.0.0.1:9", "timeout": "1s"}
        controller = ControllerProcess(
            tmp_path / "kubeconfig", tmp_path / "controller.log", ("--namespace", "shop")
        )
        with controller:
            client.apply(rollout)
            wait_for(lambda: status(client).get("stage") == "mirror", "the mirror stage")
            request(client, "promote-full", "r1")
            wait_for(lambda: status(client).get("phase") == "Succeeded", "the release to succeed")
            untouched = client.get("canary.dev/v1alpha1", "Rollout", "other", "ui")
        assert "status" not in untouched or not untouched["status"]
        assert not untouched["metadata"].get("finalizers")


# ---------------------------------------------------------------- on the real control plane
#
# The controller runs as a process with a real ServiceAccount token, bound by deploy/ as
# `kubectl kustomize` (the real one) builds it and applied to the real kube-apiserver
# (RBAC enforced). One control plane serves the whole session, so the names are adjusted where
# the test must: canary-system and shop become the test's own namespaces, and the cluster-wide
# ClusterRole and ClusterRoleBinding get the system namespace's name as a suffix. The CRD is
# left out (the control plane has it, as a cluster admin installs it once).

SYSTEM, APP = "canary-system", "shop"
API_REQUESTS = "canary_kube_api_requests_total"
RESOURCE_GROUPS = {resource: group for group, resource in {**NEEDED, **NEEDED_FOR_LEADER_ELECTION}}


@dataclass
class Install:
    plane: ControlPlane
    system: str  # where the ServiceAccount, its leader-election Role and its Lease live
    app: str  # examples/ui's namespace
    objects: list[dict[str, Any]]
    kubeconfig: Path  # the ServiceAccount token's

    def controller_args(self) -> list[str]:
        """The controller's arguments as deploy/'s Deployment gives them, but for the ones
        that only make sense in a Pod (--in-cluster, the metrics port ControllerProcess sets)."""
        deployment = next(o for o in self.objects if o["kind"] == "Deployment")
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[0] == "controller"
        return [a for a in args[1:] if a != "--in-cluster" and not a.startswith("--metrics-addr")]

    def as_controller(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The real kubectl with the controller's token."""
        return self.plane.kubectl(*args, check=False, kubeconfig=self.kubeconfig)


def adjusted(obj: dict[str, Any], system: str, app: str) -> dict[str, Any]:
    names = {SYSTEM: system, APP: app}
    meta = obj["metadata"]
    if obj["kind"] == "Namespace":
        meta["name"] = names[meta["name"]]
    if meta.get("namespace") in names:
        meta["namespace"] = names[meta["namespace"]]
    if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
        meta["name"] = f"{meta['name']}-{system}"
    if obj["kind"] == "ClusterRoleBinding":
        obj["roleRef"]["name"] = f"{obj['roleRef']['name']}-{system}"
    for subject in obj.get("subjects") or []:
        subject["namespace"] = names.get(subject.get("namespace"), subject.get("namespace"))
    if obj["kind"] == "Deployment":
        container = obj["spec"]["template"]["spec"]["containers"][0]
        container["args"] = [
            arg.replace(f"={SYSTEM}", f"={system}").replace(f"={APP}", f"={app}")
            for arg in container["args"]
        ]
    return obj


@pytest.fixture
def install(
    request: pytest.FixtureRequest, control_plane: ControlPlane, real_namespace: str,
    tmp_path: Path,
) -> Iterator[Install]:  # fmt: skip
    """deploy/ (or, parametrised, deploy/namespaced) on the real control plane, examples/ui
    in the test's namespace with ui-v1, ui-v2 and ui-v3 really Ready (kwok)."""
    directory = getattr(request, "param", "deploy")
    system = f"{real_namespace}-sys"[:63]
    objects = [
        adjusted(obj, system, real_namespace)
        for obj in kustomize(directory)
        if obj["kind"] != "CustomResourceDefinition"
    ]
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
    cluster_wide = [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    try:
        control_plane.wait_for_service_account(system, "canary-controller")
        token = control_plane.create_token(system, "canary-controller")
        kubeconfig = control_plane.write_kubeconfig(tmp_path / "controller", {"token": token})
        client = control_plane.client()
        for obj in [*example_objects(real_namespace), version_deployment("v3", real_namespace)]:
            client.apply(obj)
        for version in ("v1", "v2", "v3"):
            control_plane.wait_for_deployment(real_namespace, f"ui-{version}")
        yield Install(control_plane, system, real_namespace, objects, kubeconfig)
    finally:
        for obj in cluster_wide:
            control_plane.kubectl("delete", obj["kind"], obj["metadata"]["name"], check=False)
        control_plane.delete_namespace(system)


def real_status(install: Install) -> dict[str, Any]:
    client = install.plane.client()
    return dict(client.get("canary.dev/v1alpha1", "Rollout", install.app, "ui").get("status", {}))


def real_request(install: Install, action: str, request_id: str) -> None:
    client = install.plane.client()
    path = client.path("canary.dev/v1alpha1", "Rollout", install.app, "ui")
    value = json.dumps({"action": action, "id": request_id})
    client.merge_patch(path, {"metadata": {"annotations": {"canary.dev/request": value}}})


def answered(install: Install, request_id: str, phase: str) -> Callable[[], bool]:
    def done() -> bool:
        status = real_status(install)
        handled = status.get("handledRequest") or {}
        return handled.get("id") == request_id and status.get("phase") == phase

    return done


def a_whole_release(install: Install) -> None:
    """v2 released (paused, resumed, promoted), then v3 started and aborted (rolled back),
    then the Rollout deleted; with a notification whose receiver's URL is in a Secret."""
    client = install.plane.client()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "ui-hooks"},
        "stringData": {"address": "http://127.0.0.1:9/hook"},  # read by `get`, never listed
    }
    client.request("POST", f"/api/v1/namespaces/{install.app}/secrets", secret)
    rollout = example_release()
    rollout["metadata"]["namespace"] = install.app
    rollout["spec"]["notifications"] = [
        {"name": "hook", "provider": "webhook", "secretRef": {"name": "ui-hooks"}}
    ]
    rollout["spec"]["analysis"]["interval"] = "1s"
    rollout["spec"]["promotion"]["settleDelay"] = "1s"
    rollout["spec"]["prometheus"] = {"url": "http://127.0.0.1:9", "timeout": "1s"}
    client.apply(rollout)
    wait_for(lambda: real_status(install).get("stage") == "mirror", "the mirror stage", 60)
    real_request(install, "pause", "pause-1")
    wait_for(answered(install, "pause-1", "Paused"), "pause-1 answered")
    real_request(install, "resume", "resume-1")
    wait_for(answered(install, "resume-1", "Progressing"), "resume-1 answered")
    real_request(install, "promote-full", "promote-1")
    wait_for(lambda: real_status(install).get("phase") == "Succeeded", "the release to succeed", 60)
    path = client.path("canary.dev/v1alpha1", "Rollout", install.app, "ui")
    canary = {"version": "v3", "workloadRef": {"name": "ui-v3"}}
    client.merge_patch(path, {"spec": {"canary": canary}})
    wait_for(
        lambda: (
            real_status(install).get("canaryVersion") == "v3"
            and real_status(install).get("stage") == "mirror"
        ),
        "v3 at the mirror stage",
        60,
    )
    real_request(install, "abort", "abort-1")
    wait_for(answered(install, "abort-1", "Aborted"), "abort-1 answered")

    def rolled_back() -> bool:  # the status is written first, then the traffic
        vs = client.get("networking.istio.io/v1beta1", "VirtualService", install.app, "ui")
        primary = next(r for r in vs["spec"]["http"] if r.get("name") == "primary")
        stable = [{"destination": {"host": "ui", "subset": "stable"}}]
        return primary["route"] == stable and "mirror" not in primary

    wait_for(rolled_back, "the rollback, status and traffic")
    client.delete(path)
    listed = client.path("canary.dev/v1alpha1", "Rollout", install.app)
    wait_for(lambda: not client.request("GET", listed)["items"], "no Rollout left")


def answers(controller: ControllerProcess) -> dict[tuple[str, str, str], float]:
    """(verb, resource, HTTP code) -> how many, as the controller's client counted them."""
    return {
        (labels["verb"], labels["resource"], labels["code"]): value
        for labels, value in controller.samples(API_REQUESTS)
    }


def assert_within_rbac(
    counted: dict[tuple[str, str, str], float], logs: str, whole_release: bool = True
) -> None:
    refused = {key: n for key, n in counted.items() if key[2] in ("401", "403")}
    assert not refused, refused
    assert "may not" not in logs and "forbidden" not in logs.lower()
    allowed = {**NEEDED, **NEEDED_FOR_LEADER_ELECTION}
    for verb, resource, _code in counted:
        if resource == "discovery":  # which Istio version is served: system:discovery's
            continue
        assert verb in allowed[(RESOURCE_GROUPS[resource], resource)], (verb, resource)
    if not whole_release:
        return
    succeeded = {(verb, resource) for verb, resource, code in counted if code.startswith("2")}
    assert {
        ("patch", "rollouts"),  # the finalizer, added and removed
        ("patch", "rollouts/status"),
        ("update", "virtualservices"),
        ("update", "destinationrules"),
        ("watch", "deployments"),
        ("create", "events"),
        ("get", "secrets"),  # the notification receiver's URL
        ("create", "leases"),
        ("update", "leases"),
    } <= succeeded, sorted(succeeded)


def assert_refused(result: subprocess.CompletedProcess[str], verb: str, resource: str,
                   namespace: str, install: Install, name: str = "") -> None:  # fmt: skip
    """kubectl failed with the apiserver's 403 message (the user, verb, resource, namespace)."""
    user = f"system:serviceaccount:{install.system}:canary-controller"
    group = RESOURCE_GROUPS[resource]
    qualified = f"{resource}.{group}" if group else resource
    named = f' "{name}"' if name else ""
    assert result.returncode != 0
    assert (
        f'{qualified}{named} is forbidden: User "{user}" cannot '
        f'{verb} resource "{resource}" in API group "{group}" in the namespace "{namespace}"'
    ) in result.stderr, result.stderr


@pytest.mark.parametrize("install", ["deploy", "deploy/namespaced"], indirect=True)
def test_on_the_real_apiserver_a_whole_release_gets_no_403(
    install: Install, tmp_path: Path
) -> None:
    """Two controllers on the token, as deploy/'s Deployment runs them (replicas: 2, leader
    election on): with requests (pause, resume, promote), a rollback (abort) and the Rollout's
    deletion, every request either sent is allowed by deploy/, and each verb used is one
    deploy/ grants (NEEDED); the standby's share is its informers and the Lease reads."""
    assert_a_whole_release_gets_no_403(install, tmp_path)


def assert_a_whole_release_gets_no_403(install: Install, tmp_path: Path) -> None:
    """As many controllers as the installed Deployment's replicas, on the ServiceAccount's token
    with the Deployment's arguments, through `a_whole_release`: no 401 or 403, only granted
    verbs, one leader (tests/helm runs it on the chart's install too)."""
    replicas = next(o for o in install.objects if o["kind"] == "Deployment")["spec"]["replicas"]
    controllers = [
        ControllerProcess(install.kubeconfig, tmp_path / f"controller-{n}.log",
                          extra_args=install.controller_args())
        for n in range(replicas)
    ]  # fmt: skip
    with contextlib.ExitStack() as running:
        for controller in controllers:
            running.enter_context(controller)
        a_whole_release(install)

        def renewed() -> bool:  # the release may end before the leader's first renewal
            return any(answers(c).get(("update", "leases", "200")) for c in controllers)

        wait_for(renewed, "the Lease renewed", 60)
        counted = [answers(controller) for controller in controllers]
        lease = install.plane.client().get(
            "coordination.k8s.io/v1", "Lease", install.system, "canary-controller"
        )
    merged: dict[tuple[str, str, str], float] = {}
    for each in counted:
        for key, value in each.items():
            merged[key] = merged.get(key, 0) + value
    assert replicas == 2 and "--leader-elect" in install.controller_args()
    assert lease["spec"]["holderIdentity"]
    leaders = [c for c in counted if c.get(("patch", "rollouts/status", "200"))]
    assert len(leaders) == 1, counted
    standby = next(c for c in counted if c is not leaders[0])
    assert standby.get(("get", "leases", "200")), standby
    assert_within_rbac(merged, "".join(controller.logs() for controller in controllers))


@pytest.mark.parametrize("install", ["deploy", "deploy/namespaced"], indirect=True)
def test_on_the_real_apiserver_what_deploy_does_not_grant_is_refused(install: Install) -> None:
    secrets = install.as_controller("get", "secrets", "-n", install.app)
    assert_refused(secrets, "list", "secrets", install.app, install)
    created = install.as_controller(
        "create", "deployment", "intruder", "--image=busybox", "-n", install.app
    )
    assert_refused(created, "create", "deployments", install.app, install)
    patched = install.as_controller(
        "patch", "deployment", "ui-v1", "-n", install.app, "--type=merge",
        "-p", '{"spec":{"replicas":5}}',
    )  # fmt: skip
    assert_refused(patched, "patch", "deployments", install.app, install, name="ui-v1")
    leases = install.as_controller("get", "leases", "-n", install.app)
    assert_refused(leases, "list", "leases", install.app, install)
    assert install.as_controller("get", "secret", "nope", "-n", install.app).returncode != 0
    allowed = install.as_controller("get", "rollouts.canary.dev", "-n", install.app)
    assert allowed.returncode == 0, allowed.stderr


@pytest.mark.parametrize("install", ["deploy/namespaced"], indirect=True)
def test_on_the_real_apiserver_the_namespaced_install_is_refused_elsewhere(
    install: Install, tmp_path: Path
) -> None:
    other = f"{install.app}-other"[:63]
    install.plane.create_namespace(other)
    try:
        for verb, resource, args in (
            ("list", "rollouts", ("get", "rollouts.canary.dev")),
            ("list", "virtualservices", ("get", "virtualservices.networking.istio.io")),
            ("list", "deployments", ("get", "deployments")),
        ):
            refused = install.as_controller(*args, "-n", other)
            assert_refused(refused, verb, resource, other, install)
        everywhere = install.as_controller("get", "rollouts.canary.dev", "--all-namespaces")
        assert everywhere.returncode != 0 and "at the cluster scope" in everywhere.stderr
        assert_releases_in_its_namespace_only(install, other, tmp_path)
    finally:
        install.plane.delete_namespace(other)


def assert_releases_in_its_namespace_only(install: Install, other: str, tmp_path: Path) -> None:
    """The namespaced controller, running, takes its namespace's Rollout over and never
    touches one in `other` (no finalizer, no status)."""
    client = install.plane.client()
    for namespace in (other, install.app):
        rollout = example_release()
        rollout["metadata"]["namespace"] = namespace
        rollout["spec"]["prometheus"] = {"url": "http://127.0.0.1:9", "timeout": "1s"}
        client.apply(rollout)
    controller = ControllerProcess(
        install.kubeconfig, tmp_path / "controller.log", extra_args=install.controller_args()
    )
    with controller:
        wait_for(lambda: real_status(install).get("stage") == "mirror", "the mirror stage", 60)
        counted = answers(controller)
    untouched = client.get("canary.dev/v1alpha1", "Rollout", other, "ui")
    assert not untouched.get("status") and not untouched["metadata"].get("finalizers")
    assert_within_rbac(counted, controller.logs(), whole_release=False)
