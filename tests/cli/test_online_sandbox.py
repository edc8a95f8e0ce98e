"""The API servers every online CLI test runs against, and the connection problems a user can hit.

Aspects: the `sandbox` fixture, once on each API server (tests/cli/conftest.py parametrises it):
`sandbox`, a real HTTP API server (canary_sandbox) with the Rollout and Istio CRDs, a kubeconfig
in tmp_path, the CLI through typer's CliRunner; and `real`, the session's real control plane
(kube-apiserver with TLS and RBAC), its admin kubeconfig, the CLI as a user runs it there:
`kubectl canary ...` through the kubectl built with the control plane. Stand-ins for the
controller answer through the status subresource exactly as the real one does. Tests in this
module: kubeconfig resolution, and one-sentence errors for invalid kubeconfigs, a closed port,
missing CRDs and RBAC (a fault injected by the sandbox; a ServiceAccount with no grants on the
real apiserver). A test marked `sandbox_only` needs the sandbox's own handles (stopping its
server, a server without the CRDs, injected faults).

Other test_online_* modules import the fixtures (`sandbox_fixture`) and helpers from here.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.binaries import require_binary
from support.polling import wait_until
from support.rollouts import example_rollout
from typer.testing import CliRunner

from canary.cli.app import app
from canary.cli.session import Target, resolve
from canary.core.model import API_VERSION, KIND, REQUEST_ANNOTATION
from canary.kube.client import KubeCluster
from canary_sandbox.apiserver import ApiServer, bundled_crd_paths
from canary_sandbox.client import SandboxClient
from canary_sandbox.controlplane import ControlPlane
from canary_sandbox.objects import WriteOptions

ROOT = Path(__file__).resolve().parents[2]
ROLLOUT_CRD = ROOT / "crds" / "rollout.yaml"
Obj = dict[str, Any]
PATIENCE_SECONDS = 20.0  # only a guard against hanging forever; nothing asserts on time


def status(
    phase: str,
    *,
    version: str = "v2",
    generation: int = 1,
    stable: str = "v1",
    **extra: Any,
) -> Obj:
    """A status as the controller writes it, for the release of `version`."""
    return {
        "phase": phase,
        "stableVersion": stable,
        "canaryVersion": version,
        "observedGeneration": generation,
        "message": extra.pop("message", f"{phase.lower()} {version}"),
        **extra,
    }


@dataclass
class CliResult:
    """What a test reads of one CLI run: exit code and output (stdout, then stderr)."""

    exit_code: int
    output: str


@dataclass
class Sandbox:
    """The API server under test: `server` is the sandbox's ApiServer, or None on the real
    control plane (`plane`), where the CLI runs as `kubectl canary` with `kubectl`."""

    server: ApiServer | None
    kubeconfig: Path
    cluster: KubeCluster  # what a controller would use: the port over real HTTP
    plane: ControlPlane | None = None
    kubectl: str | None = None
    threads: list[threading.Thread] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._reads_before = rollout_gets(self.plane) if self.plane is not None else 0

    @property
    def sandbox(self) -> ApiServer:
        assert self.server is not None, "a sandbox-only handle"
        return self.server

    def create(self, rollout: Obj) -> Obj:
        namespace = rollout["metadata"]["namespace"]
        if self.plane is not None:
            ensure_namespace(self.plane, namespace)
            client = SandboxClient.from_kubeconfig(self.kubeconfig)
            collection = client.path(API_VERSION, KIND, namespace)
            created: Obj = client.request("POST", collection, rollout)
            return created
        rt = self.sandbox.registry.lookup("canary.dev", "v1alpha1", "rollouts")
        assert rt is not None
        self.sandbox.create_namespace(namespace)
        created = self.sandbox.objects.create(rt, namespace, rollout, WriteOptions())
        return created

    def create_rollout(
        self, name: str = "ui", namespace: str = "shop", version: str = "v2", **kw: Any
    ) -> Obj:
        created = self.create(example_rollout(name, version, namespace))
        if kw.get("with_status") is not None:
            return self.set_status(kw["with_status"], name, namespace)
        return created

    def set_status(self, body: Obj, name: str = "ui", namespace: str = "shop") -> Obj:
        return self.cluster.patch_rollout_status(namespace, name, body)

    def patch_spec(self, patch: Obj, name: str = "ui", namespace: str = "shop") -> Obj:
        """A merge patch of the Rollout itself (what a pipeline's `git push` leads to)."""
        client = SandboxClient.from_kubeconfig(self.kubeconfig)
        return client.merge_patch(client.path(API_VERSION, KIND, namespace, name), patch)

    def rollout(self, name: str = "ui", namespace: str = "shop") -> Obj:
        return self.cluster.get_rollout(namespace, name)

    def cli(self, *args: str) -> CliResult:
        if self.kubectl is not None:
            return run_kubectl_canary(self.kubectl, *args, "--kubeconfig", str(self.kubeconfig))
        return run_cli(*args, "--kubeconfig", str(self.kubeconfig))

    def reads(self, name: str = "ui") -> int:
        """GETs of Rollout `name` the server answered (anyone's). The real apiserver counts
        them per resource, not per name (apiserver_request_total): these tests read one
        Rollout at a time."""
        if self.plane is not None:  # the session's counter: this test's share
            return rollout_gets(self.plane) - self._reads_before
        return self.sandbox.request_log.count(verb="get", resource="rollouts", name=name)

    def in_background(self, work: Callable[[], None]) -> None:
        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        self.threads.append(thread)

    def after_reads(self, reads: int, then: Callable[[], None], name: str = "ui") -> None:
        """Once the CLI has read the Rollout `reads` times (counted by the server), do `then`."""

        def work() -> None:
            until(lambda: self.reads(name) >= reads or self.stop.is_set())
            if not self.stop.is_set():
                then()

        self.in_background(work)

    def fake_controller(self, answer: Callable[[str], str], name: str = "ui") -> None:
        """Answer each request id once, through the status subresource, like the controller."""

        def work() -> None:
            while not self.stop.is_set():
                rollout = self.rollout(name)
                raw = rollout["metadata"].get("annotations", {}).get(REQUEST_ANNOTATION)
                handled = (rollout.get("status") or {}).get("handledRequest") or {}
                if raw is not None and json.loads(raw)["id"] != handled.get("id"):
                    request = json.loads(raw)
                    self.set_status(handled_request(request, answer(request["action"])), name)
                self.stop.wait(0.02)

        self.in_background(work)


def handled_request(request: Obj, result: str) -> Obj:
    return {
        "handledRequest": {
            "id": request["id"],
            "action": request["action"],
            "time": "2024-05-01T12:00:00Z",
            "result": result,
        }
    }


def until(condition: Callable[[], bool]) -> None:
    """`wait_until` with this module's patience (test_dashboard_server.py uses it too)."""
    wait_until(condition, "the condition", PATIENCE_SECONDS, every=0.02)


def run_cli(*args: str) -> CliResult:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return CliResult(result.exit_code, result.output)


def run_kubectl_canary(kubectl: str, *args: str) -> CliResult:
    """`kubectl canary ARGS`: kubectl finds the plugin (`kubectl-canary`) next to this Python."""
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("KUBECONFIG", None)
    completed = subprocess.run(
        [kubectl, "canary", *args], capture_output=True, text=True, env=env, timeout=120,
        check=False,
    )  # fmt: skip
    output = completed.stdout + completed.stderr
    assert "Traceback" not in output, output
    return CliResult(completed.returncode, output)


def ensure_namespace(plane: ControlPlane, name: str) -> None:
    try:
        plane.create_namespace(name)
    except urllib.error.HTTPError as error:
        if error.code != 409:
            raise


def rollout_gets(plane: ControlPlane) -> int:
    """apiserver_request_total for GETs of single Rollouts (their status subresource aside)."""
    total = 0.0
    for line in plane.read_text("/metrics").splitlines():
        if line.startswith("apiserver_request_total{") and all(
            label in line
            for label in ('group="canary.dev"', 'resource="rollouts"', 'scope="resource"',
                          'subresource=""', 'verb="GET"')
        ):  # fmt: skip
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def start_sandbox(tmp_path: Path, crds: list[Path]) -> Iterator[Sandbox]:
    server = ApiServer().start()
    server.install_crd_files(crds)
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", namespace="shop")
    box = Sandbox(server, kubeconfig, KubeCluster.from_kubeconfig(str(kubeconfig), None))
    try:
        yield box
    finally:
        finish(box)
        server.stop()


def start_real(plane: ControlPlane, tmp_path: Path) -> Iterator[Sandbox]:
    """The session's control plane with namespace shop (the tests' default, as the sandbox's
    kubeconfig sets it); every Rollout the test made in shop and other deleted afterwards."""
    kubeconfig = plane.write_kubeconfig(tmp_path / "kubeconfig")
    config = yaml.safe_load(kubeconfig.read_text())
    config["contexts"][0]["context"]["namespace"] = "shop"
    kubeconfig.write_text(yaml.safe_dump(config))
    ensure_namespace(plane, "shop")
    cluster = KubeCluster.from_kubeconfig(str(kubeconfig), None)
    box = Sandbox(None, kubeconfig, cluster, plane, require_binary("kubectl"))
    try:
        yield box
    finally:
        finish(box)
        for namespace in ("shop", "other"):
            plane.request("DELETE", f"/apis/canary.dev/v1alpha1/namespaces/{namespace}/rollouts")


def finish(box: Sandbox) -> None:
    box.stop.set()
    for thread in box.threads:
        thread.join(timeout=5)


@pytest.fixture(name="sandbox")
def sandbox_fixture(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """Parametrised over `sandbox` and `real` by tests/cli/conftest.py."""
    if getattr(request, "param", "sandbox") == "real":
        yield from start_real(request.getfixturevalue("control_plane"), tmp_path)
        return
    yield from start_sandbox(tmp_path, [ROLLOUT_CRD, *bundled_crd_paths()])


@pytest.fixture(name="sandbox_without_crd")
def sandbox_without_crd_fixture(tmp_path: Path) -> Iterator[Sandbox]:
    yield from start_sandbox(tmp_path, bundled_crd_paths())


# ---------------------------------------------------------------- kubeconfig resolution


def write_kubeconfig(path: Path, namespace: str | None, current: str | None = "a") -> Path:
    context: Obj = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "a", "context": context}, {"name": "b", "context": {"cluster": "c"}}],
        "current-context": current,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_namespace_comes_from_the_flag_then_the_context_then_default(tmp_path: Path) -> None:
    config = str(write_kubeconfig(tmp_path / "k", namespace="shop"))
    assert resolve(Target(config)).namespace == "shop"
    assert resolve(Target(config, namespace="other")).namespace == "other"
    assert resolve(Target(config, context="b")).namespace == "default"


def test_kubeconfig_env_lists_several_files(tmp_path: Path, monkeypatch: Any) -> None:
    first = write_kubeconfig(tmp_path / "first", namespace="shop", current=None)
    second = write_kubeconfig(tmp_path / "second", namespace="other", current="a")
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    assert resolve(Target()).namespace == "shop"  # first file's context, second's current


def test_a_kubeconfig_split_over_two_files_with_relative_files_connects(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: Any
) -> None:
    """The context in one file, the cluster and user in another with their certificates as
    files beside it (relative paths), as kubectl allows: the CLI resolves and connects with
    the same merge."""
    sandbox.create(example_rollout())
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    credentials = tmp_path / "credentials"
    (credentials / "pki").mkdir(parents=True)
    for entry in [*config["clusters"], *config["users"]]:
        body = entry.get("cluster") or entry.get("user") or {}
        for key in [k for k in body if k.endswith("-data")]:
            name = f"pki/{entry['name']}-{key.removesuffix('-data')}"
            (credentials / name).write_bytes(base64.b64decode(body.pop(key)))
            body[key.removesuffix("-data")] = name
    contexts = {
        "current-context": config["current-context"],
        "contexts": [{**c, "context": {**c["context"], "namespace": "shop"}}
                     for c in config["contexts"]],
    }  # fmt: skip
    first = tmp_path / "contexts" / "config"
    first.parent.mkdir()
    first.write_text(yaml.safe_dump(contexts))
    second = credentials / "config"
    second.write_text(yaml.safe_dump({"clusters": config["clusters"], "users": config["users"]}))
    monkeypatch.setenv("KUBECONFIG", f"{first}{os.pathsep}{second}")
    monkeypatch.chdir(tmp_path)

    result = run_cli("get", "ui")

    assert result.exit_code == 0, result.output
    assert "ui" in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("clusters: [", "is not valid YAML"),
        ("- a list", "is not a kubeconfig"),
        ("apiVersion: v1\nkind: Config\n", "has no current context: pass --context"),
    ],
)
def test_invalid_kubeconfig_is_one_sentence(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(content)
    result = run_cli("get", "--kubeconfig", str(path))
    assert result.exit_code == 1
    assert result.output.startswith("error: ")
    assert message in result.output


def test_unknown_context_names_the_known_ones(tmp_path: Path) -> None:
    config = str(write_kubeconfig(tmp_path / "k", namespace="shop"))
    result = run_cli("get", "--kubeconfig", config, "--context", "prod")
    assert result.exit_code == 1
    assert "error: context 'prod' is not in the kubeconfig (contexts: a, b)" in result.output


def test_missing_kubeconfig_file(tmp_path: Path) -> None:
    result = run_cli("get", "--kubeconfig", str(tmp_path / "nope"))
    assert result.exit_code == 1
    assert "does not exist: check --kubeconfig" in result.output


# ---------------------------------------------------------------- the API, unreachable or refusing


@pytest.mark.sandbox_only  # stops the server: the real one is the whole session's
def test_cannot_connect_to_a_stopped_server(sandbox: Sandbox) -> None:
    sandbox.sandbox.stop()
    result = sandbox.cli("get", "ui")
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot reach the Kubernetes API at http://127.0.0.1:")
    assert "check --kubeconfig/--context and that the cluster is running" in result.output


def test_crd_missing(sandbox_without_crd: Sandbox) -> None:
    for args in (("get",), ("get", "ui"), ("promote", "ui"), ("wait", "ui")):
        result = sandbox_without_crd.cli(*args)
        assert result.exit_code == 1, args
        assert "the Rollout CRD (rollouts.canary.dev) is not installed" in result.output


@pytest.mark.sandbox_only  # an injected 403; the real one follows
def test_forbidden_by_rbac(sandbox: Sandbox) -> None:
    sandbox.create_rollout()
    sandbox.sandbox.faults.fail_next(1, code=403, resource="rollouts")
    result = sandbox.cli("get", "ui")
    assert result.exit_code == 1
    assert result.output == (
        "error: forbidden: your Kubernetes user may not get rollouts.canary.dev in namespace "
        "shop: ask for RBAC access (check with `kubectl auth can-i get rollouts.canary.dev "
        "-n shop`)\n"
    )


def test_forbidden_by_real_rbac(
    control_plane: ControlPlane, real_namespace: str, tmp_path: Path
) -> None:
    """A ServiceAccount nothing grants anything: kube-apiserver's RBAC answers 403."""
    token = control_plane.create_token(real_namespace, "default")
    kubeconfig = control_plane.write_kubeconfig(tmp_path / "kubeconfig", {"token": token})
    kubectl = require_binary("kubectl")
    result = run_kubectl_canary(kubectl, "get", "ui", "-n", real_namespace,
                                "--kubeconfig", str(kubeconfig))  # fmt: skip
    assert result.exit_code == 1
    assert result.output == (
        "error: forbidden: your Kubernetes user may not get rollouts.canary.dev in namespace "
        f"{real_namespace}: ask for RBAC access (check with `kubectl auth can-i get "
        f"rollouts.canary.dev -n {real_namespace}`)\n"
    )
