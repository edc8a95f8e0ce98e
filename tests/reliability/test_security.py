"""Least privilege and secrets, checked against what the controller really does.

Covers: every API request the controller makes during a whole release (finalizer, status,
VirtualService and DestinationRule updates, Deployment readiness, Events, the leader Lease, a
request annotation, deletion) is allowed by deploy/'s ClusterRole and leader-election Role, and
those grant nothing beyond that list; the namespace-scoped variant grants the same in one
namespace; the Deployment runs as non-root with a read-only root filesystem; a Prometheus
bearer token the controller uses never appears in its logs, Events or the Rollout's status.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from binary_support import require_binary

from canary_sandbox.client import SandboxClient
from canary_sandbox.stack import ControllerProcess, example_release, sandbox_with_example

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
NEEDED_FOR_LEADER_ELECTION = {("coordination.k8s.io", "leases"): {"get", "create", "update"}}


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


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


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
            wait_for(lambda: status(client).get("stage") == "mirror")
            wait_for(lambda: Unauthorized.seen)  # checks ran, with the token, and failed
            wait_for(lambda: status(client).get("lastAnalysis"))
            status_with_errors = json.dumps(status(client))
            request(client, "promote-full", "r1")
            wait_for(lambda: status(client).get("phase") == "Succeeded")
            client.delete(client.path("canary.dev/v1alpha1", "Rollout", "shop", "ui"))
            wait_for(lambda: not client.request("GET", client.path(
                "canary.dev/v1alpha1", "Rollout", "shop", ""))["items"])  # fmt: skip
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
            wait_for(lambda: status(client).get("stage") == "mirror")
            request(client, "promote-full", "r1")
            wait_for(lambda: status(client).get("phase") == "Succeeded")
            untouched = client.get("canary.dev/v1alpha1", "Rollout", "other", "ui")
        assert "status" not in untouched or not untouched["status"]
        assert not untouched["metadata"].get("finalizers")
