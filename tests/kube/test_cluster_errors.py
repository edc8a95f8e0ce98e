"""KubeCluster error mapping and in-adapter retries, over real HTTP.

Covers: unreachable API → UnavailableError naming the address and the fix (after retries);
403 → ForbiddenError naming verb, resource and namespace (a stub server: the sandbox has no
authorization); 5xx and 429 retried for reads and idempotent writes, honouring Retry-After;
creates not retried; retries exhausted → UnavailableError; a bad kubeconfig → one sentence;
credentials never appear in messages.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import NAMESPACE, FakeSleep, create_rollout
from kubernetes import client
from support.rollouts import example_rollout

from canary.kube.client import KubeCluster
from canary.kube.errors import safe_host
from canary.kube.port import ForbiddenError, KubeError, UnavailableError
from canary_sandbox.apiserver import ApiServer

ROLLOUT = {"apiVersion": "canary.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "ui"}}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def kubeconfig_for(path: Path, url: str, token: str = "s3cret-token") -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": url}}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


class _Forbidding(BaseHTTPRequestHandler):
    """Answers every request 403 Forbidden with a Kubernetes Status, like RBAC does."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forbid(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = json.dumps(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "Forbidden",
                "code": 403,
                "message": 'rollouts.canary.dev "ui" is forbidden: User "x" cannot patch',
            }
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._forbid()

    def do_PATCH(self) -> None:
        self._forbid()


@pytest.fixture
def forbidding_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Forbidding)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_an_unreachable_api_names_the_address_and_the_fix(tmp_path: Path, fake_sleep: FakeSleep):
    url = f"http://127.0.0.1:{free_port()}"
    cluster = KubeCluster.from_kubeconfig(
        str(kubeconfig_for(tmp_path / "kc", url)), qps=0, timeout=2, sleep=fake_sleep
    )

    with pytest.raises(UnavailableError) as raised:
        cluster.get_rollout(NAMESPACE, "ui")

    assert str(raised.value) == (
        f"cannot reach the Kubernetes API at {url}: "
        "check --kubeconfig/--context and that the cluster is running"
    )
    assert len(fake_sleep.calls) == 3  # retried, then gave up
    assert cluster.request_counts[("get", "rollouts")] == 4


def test_forbidden_names_verb_resource_and_namespace(tmp_path: Path, forbidding_url: str):
    cluster = KubeCluster.from_kubeconfig(str(kubeconfig_for(tmp_path / "kc", forbidding_url)))

    with pytest.raises(ForbiddenError) as patched:
        cluster.patch_rollout_status(NAMESPACE, "ui", {"phase": "Progressing"})
    with pytest.raises(ForbiddenError) as listed:
        cluster.list_rollouts(None)

    assert str(patched.value) == (
        "the controller may not patch rollouts/status in namespace shop: "
        "grant it in the controller's Role"
    )
    assert str(listed.value) == (
        "the controller may not list rollouts in all namespaces: "
        "grant it in the controller's ClusterRole"
    )
    assert "s3cret-token" not in str(patched.value) + str(listed.value)


def test_server_errors_on_reads_are_retried(
    cluster: KubeCluster, server: ApiServer, custom: client.CustomObjectsApi, fake_sleep: FakeSleep
):
    create_rollout(custom, example_rollout())
    server.faults.fail_next(2, code=503, resource="rollouts")

    assert cluster.get_rollout(NAMESPACE, "ui")["metadata"]["name"] == "ui"
    assert len(fake_sleep.calls) == 2


def test_throttling_honours_retry_after(
    cluster: KubeCluster, server: ApiServer, custom: client.CustomObjectsApi, fake_sleep: FakeSleep
):
    create_rollout(custom, example_rollout())
    server.faults.throttle_next(1, retry_after=3, resource="rollouts")

    cluster.patch_rollout_status(NAMESPACE, "ui", {"phase": "Progressing"})

    assert fake_sleep.calls == [3.0]


def test_retries_run_out_with_unavailable_error(
    cluster: KubeCluster, server: ApiServer, custom: client.CustomObjectsApi, fake_sleep: FakeSleep
):
    create_rollout(custom, example_rollout())
    server.faults.fail_next(10, code=500, resource="rollouts")

    with pytest.raises(UnavailableError) as raised:
        cluster.get_rollout(NAMESPACE, "ui")

    assert str(raised.value).startswith(
        f"the Kubernetes API at {server.url} failed (500: injected failure (500)) "
        "to get Rollout shop/ui: "
    )
    assert len(fake_sleep.calls) == 3


def test_creates_are_not_retried(cluster: KubeCluster, server: ApiServer, fake_sleep: FakeSleep):
    server.faults.fail_next(1, code=500, resource="events", writes_only=True)
    involved = {**ROLLOUT, "metadata": {"name": "ui", "namespace": NAMESPACE}}

    with pytest.raises(UnavailableError):
        cluster.record_event(involved, "Normal", "Started", "release v2 started")

    assert fake_sleep.calls == []
    assert cluster.request_counts[("create", "events")] == 1


def test_an_offline_server_is_unavailable(cluster: KubeCluster, server: ApiServer):
    server.faults.offline = True

    with pytest.raises(UnavailableError, match=r"failed \(503: .*offline\)"):
        cluster.list_rollouts(NAMESPACE)


def test_a_missing_kubeconfig_is_one_sentence(tmp_path: Path):
    missing = tmp_path / "nope"

    with pytest.raises(KubeError, match=r"^cannot load the kubeconfig .*nope.*check --kubeconfig"):
        KubeCluster.from_kubeconfig(str(missing))


def test_an_unknown_context_is_one_sentence(tmp_path: Path):
    path = kubeconfig_for(tmp_path / "kc", "http://127.0.0.1:1")

    with pytest.raises(KubeError, match=r"context staging.*check --kubeconfig and --context"):
        KubeCluster.from_kubeconfig(str(path), context="staging")


def test_in_cluster_outside_a_pod_says_so(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    with pytest.raises(KubeError, match=r"not running in a Kubernetes pod .*give --kubeconfig"):
        KubeCluster.in_cluster()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://admin:pa55@10.0.0.1:6443/k8s?token=x", "https://10.0.0.1:6443"),
        ("https://[fd00::1]:443", "https://[fd00::1]:443"),
        ("http://127.0.0.1", "http://127.0.0.1"),
    ],
)
def test_the_api_address_in_messages_carries_no_credentials(url: str, shown: str):
    assert safe_host(url) == shown
