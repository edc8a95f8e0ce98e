"""A real Kubernetes control plane on 127.0.0.1, for tests and for people (never product).

    with ControlPlane().start() as plane:
        plane.kubectl("get", "nodes")      # the admin kubeconfig is plane.kubeconfig
        plane.kill_apiserver(); plane.start_apiserver()

It runs, each on its own free ports of 127.0.0.1 and with its log in `<workdir>/logs`:

- etcd (its own data directory; `--unsafe-no-fsync`: this is test equipment);
- kube-apiserver with TLS from a generated CA, client-certificate authentication,
  `--authorization-mode=Node,RBAC` and ServiceAccount token signing (TokenRequest works, so a
  controller can run under a real ServiceAccount token: `create_token`);
- kube-controller-manager with the controllers in `CONTROLLERS`, each under its own
  ServiceAccount's credentials, as kubeadm runs it;
- kube-scheduler;
- kwok, which plays the kubelet of `nodes` fake Nodes: Pods scheduled there become Running
  and Ready, so a Deployment's `status.readyReplicas` is real.

`start()` installs crds/ (the Rollout CRD), Istio's CRDs and Gateway API's standard CRDs and
waits until every component is healthy, the Nodes are Ready, the CRDs are established and the
`default` ServiceAccount exists. `stop()` ends every process (children are also sent SIGKILL
by the kernel when the process that started them dies: `setpriv --pdeathsig`).

Binaries and third-party CRDs come from `canary_sandbox.k8s_assets`.
`python -m canary_sandbox.controlplane` runs one for a person until Ctrl-C (`./dev cluster`).
"""

from __future__ import annotations

import argparse
import base64
import json
import queue
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from canary.core.objects import Obj
from canary_sandbox.client import SandboxClient
from canary_sandbox.k8s_assets import REPO, Assets, AssetsMissingError, ensure_assets
from canary_sandbox.pki import CertificateAuthority, KeyPair, signing_key_pair
from canary_sandbox.prometheus import free_port

HOST = "127.0.0.1"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service: first address of SERVICE_CIDR
ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "endpointslice-controller",
    # removes the not-ready taint that admission puts on every new Node once kwok reports it
    # Ready (without it no Pod schedules); also taints Nodes whose heartbeats stop
    "node-lifecycle-controller",
)
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
NODE_LEASE_SECONDS = 40
NODE_GRACE = "2m"
OWN_CRDS = (REPO / "crds" / "rollout.yaml",)


def deployment_ready(deployment: Obj) -> bool:
    """Whether the Deployment controller has observed the Deployment's spec and every replica
    is updated and available."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    replicas = int(spec.get("replicas", 1))
    return bool(
        int(status.get("observedGeneration") or 0) >= deployment["metadata"].get("generation", 1)
        and int(status.get("updatedReplicas") or 0) == replicas
        and int(status.get("availableReplicas") or 0) == replicas
        and int(status.get("replicas") or 0) == replicas
    )


class ControlPlaneError(RuntimeError):
    """A component did not start, or died."""


class _Spawner:
    """Starts every child process from one long-lived thread.

    The kernel delivers a child's parent-death signal when the *thread* that forked it ends,
    so children spawned from a short-lived thread (a test's helper thread restarting the
    apiserver) would die with it. This thread lives as long as the control plane.
    """

    def __init__(self) -> None:
        self._requests: queue.Queue[tuple[list[str], dict[str, Any], queue.Queue[Any]] | None]
        self._requests = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="controlplane-spawner", daemon=True)
        self._thread.start()
        self._setpriv = shutil.which("setpriv")

    def _run(self) -> None:
        while (request := self._requests.get()) is not None:
            argv, options, answer = request
            try:
                answer.put(subprocess.Popen(argv, **options))
            except OSError as error:
                answer.put(error)

    def spawn(self, argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
        if self._setpriv is not None:
            argv = [self._setpriv, "--pdeathsig", "KILL", "--", *argv]
        answer: queue.Queue[Any] = queue.Queue()
        self._requests.put((argv, options, answer))
        result = answer.get()
        if isinstance(result, OSError):
            raise ControlPlaneError(f"cannot start {argv[0]}: {result}")
        process: subprocess.Popen[bytes] = result
        return process

    def close(self) -> None:
        self._requests.put(None)
        self._thread.join(5)


@dataclass
class _Component:
    name: str
    argv: Callable[[], list[str]]
    ready: Callable[[], bool]
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Ports:
    etcd: int = 0
    etcd_peer: int = 0
    apiserver: int = 0
    controller_manager: int = 0
    scheduler: int = 0
    kwok: int = 0

    def pick(self, *names: str) -> None:
        for name in names or tuple(self.__dataclass_fields__):
            setattr(self, name, free_port(HOST))


@dataclass
class ControlPlane:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on 127.0.0.1."""

    workdir: Path | None = None
    nodes: int = 3
    assets: Assets | None = None
    start_timeout: float = 90.0
    crd_files: Sequence[Path] = OWN_CRDS
    ports: Ports = field(default_factory=Ports)
    # an audit policy: kube-apiserver then writes its audit log (JSON lines) to `audit_log`
    audit_policy: Path | None = None

    def __post_init__(self) -> None:
        self._owned_workdir: tempfile.TemporaryDirectory[str] | None = None
        self._components: dict[str, _Component] = {}
        self._spawner: _Spawner | None = None
        self._lock = threading.RLock()
        self._ssl: ssl.SSLContext | None = None

    # ------------------------------------------------------------------ paths

    @property
    def dir(self) -> Path:
        assert self.workdir is not None, "the control plane is not started"
        return self.workdir

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.ports.apiserver}"

    @property
    def etcd_url(self) -> str:
        """etcd's client URL (plain HTTP on 127.0.0.1), e.g. for `recorder.EtcdRecorder`."""
        return f"http://{HOST}:{self.ports.etcd}"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (system:masters)."""
        return self.dir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.dir / "pki" / "ca.crt"

    @property
    def bin_dir(self) -> Path:
        return self._assets.kubectl.parent

    @property
    def _assets(self) -> Assets:
        assert self.assets is not None, "the control plane is not started"
        return self.assets

    def log_file(self, name: str) -> Path:
        return self.dir / "logs" / f"{name}.log"

    @property
    def audit_log(self) -> Path:
        return self.log_file("audit")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ControlPlane:
        """Start everything and wait until it is ready; on failure nothing is left running."""
        started = time.monotonic()
        if self.assets is None:
            self.assets = ensure_assets(build=False)
        if self.workdir is None:
            self._owned_workdir = tempfile.TemporaryDirectory(prefix="canary-controlplane-")
            self.workdir = Path(self._owned_workdir.name)
        for sub in ("logs", "pki", "etcd"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self._spawner = _Spawner()
        try:
            self.ports.pick()
            self._write_pki()
            self._define_components()
            self._start("etcd")
            self._start("kube-apiserver")
            for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
                self._launch(name)
            self._create_nodes()
            self.install(self._all_crd_files())
            deadline = time.monotonic() + self.start_timeout
            for name in ("kube-controller-manager", "kube-scheduler"):
                self._wait(self._components[name], deadline)
            self._wait_for("the kwok Nodes to be Ready", self._nodes_ready, deadline)
            self._wait_for(
                "the default ServiceAccount",
                lambda: self._exists("/api/v1/namespaces/default/serviceaccounts/default"),
                deadline,
            )
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop every process (kwok first, etcd last) and remove an owned work directory."""
        with self._lock:
            for name in reversed(list(self._components)):
                self._terminate(self._components[name])
            if self._spawner is not None:
                self._spawner.close()
                self._spawner = None
            if self._owned_workdir is not None:
                self._owned_workdir.cleanup()
                self._owned_workdir = None
                self.workdir = None

    def __enter__(self) -> ControlPlane:
        return self if self._components else self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ fault handles

    def stop_apiserver(self) -> None:
        """SIGTERM kube-apiserver and wait until it has exited."""
        self._terminate(self._components["kube-apiserver"])

    def kill_apiserver(self) -> None:
        """SIGKILL kube-apiserver and wait until it has exited."""
        self._terminate(self._components["kube-apiserver"], kill=True)

    def start_apiserver(self) -> None:
        """Start kube-apiserver again on the same port; returns once it is ready."""
        self._start("kube-apiserver")

    def restart_apiserver(self, kill: bool = False) -> None:
        self._terminate(self._components["kube-apiserver"], kill=kill)
        self.start_apiserver()

    def stop_etcd(self) -> None:
        """SIGTERM etcd (the apiserver stays up and answers errors) and wait until it exited."""
        self._terminate(self._components["etcd"])

    def start_etcd(self) -> None:
        """Start etcd again on the same ports and data directory; returns once it is healthy."""
        self._start("etcd")

    def compact_etcd(self) -> int:
        """Compact etcd's history up to its current revision (watches from before it get 410)."""
        status = self._etcd("/v3/maintenance/status", {})
        revision = int(status["header"]["revision"])
        self._etcd("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def pid(self, name: str) -> int | None:
        process = self._components[name].process
        return process.pid if process is not None and process.poll() is None else None

    # ------------------------------------------------------------------ using it

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """The built kubectl with the admin kubeconfig (or `kubeconfig`, e.g. a ServiceAccount
        token's from `write_kubeconfig`); raises with its stderr when `check`."""
        config = kubeconfig if kubeconfig is not None else self.kubeconfig
        result = subprocess.run(
            [str(self._assets.kubectl), "--kubeconfig", str(config), *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def install(self, paths: Iterable[Path]) -> None:
        """Server-side apply of YAML files; waits until the CRDs among them are established."""
        files = [str(path) for path in paths]
        if not files:
            return
        args = ["apply", "--server-side", "--force-conflicts", "--field-manager=canary-tests"]
        for path in files:
            args += ["-f", path]
        self.kubectl(*args)
        names = [
            doc["metadata"]["name"]
            for path in files
            for doc in yaml.safe_load_all(Path(path).read_text(encoding="utf-8"))
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"
        ]
        deadline = time.monotonic() + self.start_timeout
        for name in names:
            self._wait_for(
                f"CRD {name} to be established", partial(self._established, name), deadline
            )

    def request(self, method: str, path: str, body: Obj | None = None) -> Obj:
        """One admin request to kube-apiserver; the decoded answer (HTTPError on 4xx/5xx)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10, context=self._tls()) as response:
            answer: Obj = json.loads(response.read() or b"{}")
            return answer

    def read_text(self, path: str) -> str:
        """One admin GET of a plain-text endpoint (/metrics, /healthz?verbose)."""
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10, context=self._tls()) as r:
            text: str = r.read().decode()
            return text

    def client(self) -> SandboxClient:
        """The tests' small JSON client (`canary_sandbox.client`), as the admin over TLS."""
        return SandboxClient(self.url, timeout=30, context=self._tls())

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        self.request(
            "POST",
            "/api/v1/namespaces",
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": labels or {}},
            },
        )

    def delete_namespace(self, name: str) -> None:
        """Ask for the namespace's deletion (the namespace controller finishes it later)."""
        try:
            self.request("DELETE", f"/api/v1/namespaces/{name}")
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise

    def wait_for_deployment(self, namespace: str, name: str, ready: bool = True) -> None:
        """Until the Deployment controller has observed the Deployment's spec and every replica
        is updated and available (`ready`), or none is ready (not `ready`: e.g. its Pods fit
        no Node)."""
        path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"

        def settled() -> bool:
            deployment = self.request("GET", path)
            if ready:
                return deployment_ready(deployment)
            status = deployment.get("status") or {}
            if int(status.get("observedGeneration") or 0) < deployment["metadata"]["generation"]:
                return False
            available = int(status.get("availableReplicas") or 0)
            return available == 0 and int(status.get("readyReplicas") or 0) == 0

        state = "ready" if ready else "unready"
        self._wait_for(
            f"Deployment {namespace}/{name} {state}", settled, time.monotonic() + self.start_timeout
        )

    def wait_for_service_account(self, namespace: str, name: str = "default") -> None:
        """Until the serviceaccount controller has created `name` in `namespace`."""
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}"
        self._wait_for(
            f"ServiceAccount {namespace}/{name}",
            lambda: self._exists(path),
            time.monotonic() + self.start_timeout,
        )

    def create_token(self, namespace: str, service_account: str, seconds: int = 3600) -> str:
        """A token for the ServiceAccount from the TokenRequest API (as kubelet gets them)."""
        answer = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds},
            },
        )
        token: str = answer["status"]["token"]
        return token

    def write_kubeconfig(self, path: Path, user: dict[str, str] | None = None) -> Path:
        """A kubeconfig for this API server: the admin's, or with `user` (e.g. {"token": t})."""
        pki = self.dir / "pki"
        if user is None:
            user = {
                "client-certificate-data": _b64(pki / "admin.crt"),
                "client-key-data": _b64(pki / "admin.key"),
            }
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "canary-controlplane",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": _b64(self.ca_file),
                    },
                }
            ],
            "users": [{"name": "user", "user": user}],
            "contexts": [
                {
                    "name": "canary-controlplane",
                    "context": {"cluster": "canary-controlplane", "user": "user"},
                }
            ],
            "current-context": "canary-controlplane",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        path.chmod(0o600)
        return path

    # ------------------------------------------------------------------ set-up

    def _write_pki(self) -> None:
        pki = self.dir / "pki"
        ca = CertificateAuthority(pki)
        ca.serving(
            "kube-apiserver",
            dns=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ips=(HOST, SERVICE_IP),
        )
        for name in ("kube-controller-manager", "kube-scheduler"):
            ca.serving(f"{name}-serving", dns=("localhost",), ips=(HOST,))
        ca.client("admin", "canary-admin", ("system:masters",))
        ca.client("kube-controller-manager", "system:kube-controller-manager")
        ca.client("kube-scheduler", "system:kube-scheduler")
        signing_key_pair(pki)
        self._ssl = None
        self.write_kubeconfig(self.kubeconfig)
        for name in ("kube-controller-manager", "kube-scheduler"):
            self.write_kubeconfig(
                self.dir / f"{name}.kubeconfig",
                {
                    "client-certificate-data": _b64(pki / f"{name}.crt"),
                    "client-key-data": _b64(pki / f"{name}.key"),
                },
            )
        (self.dir / "kwok.yaml").write_text(
            "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions: {}\n"
        )

    def _define_components(self) -> None:
        pki, ports, binary = self.dir / "pki", self.ports, self._assets.binaries
        sa = KeyPair(pki / "service-account.pub", pki / "service-account.key")

        def etcd() -> list[str]:
            client, peer = f"http://{HOST}:{ports.etcd}", f"http://{HOST}:{ports.etcd_peer}"
            return [
                str(binary["etcd"]),
                "--name=canary",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=canary={peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ]

        def audit() -> list[str]:
            if self.audit_policy is None:
                return []
            return [
                f"--audit-policy-file={self.audit_policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-maxsize=1000000",  # megabytes: one file, never rotated
            ]

        def apiserver() -> list[str]:
            return [
                str(binary["kube-apiserver"]),
                f"--etcd-servers=http://{HOST}:{ports.etcd}",
                f"--bind-address={HOST}",
                f"--advertise-address={HOST}",
                f"--secure-port={ports.apiserver}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'kube-apiserver.crt'}",
                f"--tls-private-key-file={pki / 'kube-apiserver.key'}",
                f"--client-ca-file={self.ca_file}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={ISSUER}",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
                *audit(),
            ]

        def component(name: str, port: int) -> list[str]:
            """What kube-controller-manager and kube-scheduler share: own credentials, serving
            certificate and port, no leader election (one of each)."""
            return [
                str(binary[name]),
                f"--kubeconfig={self.dir / f'{name}.kubeconfig'}",
                f"--bind-address={HOST}",
                f"--secure-port={port}",
                f"--tls-cert-file={pki / f'{name}-serving.crt'}",
                f"--tls-private-key-file={pki / f'{name}-serving.key'}",
                "--leader-elect=false",
                "--profiling=false",
                "--v=1",
            ]

        def controller_manager() -> list[str]:
            return [
                *component("kube-controller-manager", ports.controller_manager),
                f"--controllers={','.join(CONTROLLERS)}",
                f"--service-account-private-key-file={sa.key}",
                f"--root-ca-file={self.ca_file}",
                "--use-service-account-credentials=true",
                # a loaded 2-core machine may delay a heartbeat: no Node flaps for that
                f"--node-monitor-grace-period={NODE_GRACE}",
            ]

        def scheduler() -> list[str]:
            return component("kube-scheduler", ports.scheduler)

        def kwok() -> list[str]:
            return [
                str(binary["kwok"]),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={self.dir / 'kwok.yaml'}",
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
                f"--server-address={HOST}:{ports.kwok}",
                f"--node-ip={HOST}",
                "--cidr=10.244.0.1/16",
                # kwok renews each Node's Lease, the heartbeat the node-lifecycle controller
                # reads: without it every Node turns NotReady after the grace period and its
                # Pods lose their Ready condition for good
                f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
            ]

        def healthy(port_name: str) -> Callable[[], bool]:
            return lambda: self._get_ok(f"https://{HOST}:{getattr(ports, port_name)}/healthz")

        self._components = {
            component.name: component
            for component in (
                _Component("etcd", etcd, self._etcd_healthy),
                _Component("kube-apiserver", apiserver, lambda: self._get_ok(f"{self.url}/readyz")),
                _Component(
                    "kube-controller-manager", controller_manager, healthy("controller_manager")
                ),
                _Component("kube-scheduler", scheduler, healthy("scheduler")),
                _Component("kwok", kwok, lambda: True),
            )
        }

    def _all_crd_files(self) -> list[Path]:
        return [*self.crd_files, *self._assets.crd_files]

    def _create_nodes(self) -> None:
        for index in range(self.nodes):
            self.request("POST", "/api/v1/nodes", kwok_node(f"kwok-node-{index}"))

    # ------------------------------------------------------------------ processes

    def _launch(self, name: str) -> None:
        component = self._components[name]
        assert self._spawner is not None, "the control plane is stopped"
        with self._lock:
            if component.running():
                raise ControlPlaneError(f"{name} is already running")
            log = open(self.log_file(name), "ab")  # noqa: SIM115 (the child keeps it)
            try:
                component.process = self._spawner.spawn(
                    component.argv(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C in `./dev cluster` is ours to handle
                )
            finally:
                log.close()
            component.starts += 1

    def _start(self, name: str) -> None:
        self._launch(name)
        self._wait(self._components[name], time.monotonic() + self.start_timeout)

    def _wait(self, component: _Component, deadline: float) -> None:
        while True:
            if not component.running():
                raise ControlPlaneError(
                    f"{component.name} exited before it was ready; the end of its log "
                    f"({self.log_file(component.name)}):\n{self._log_tail(component.name)}"
                )
            if component.ready():
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{component.name} was not ready after {self.start_timeout:.0f}s; the end "
                    f"of its log:\n{self._log_tail(component.name)}"
                )
            time.sleep(0.1)

    def _wait_for(self, what: str, condition: Callable[[], bool], deadline: float) -> None:
        while not condition():
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"timed out waiting for {what}")
            dead = [c.name for c in self._components.values() if c.starts and not c.running()]
            if dead:
                raise ControlPlaneError(
                    f"{dead[0]} died while waiting for {what}:\n{self._log_tail(dead[0])}"
                )
            time.sleep(0.1)

    def _terminate(self, component: _Component, kill: bool = False) -> None:
        process = component.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(15)
        component.process = None

    def _log_tail(self, name: str, lines: int = 25) -> str:
        try:
            text = self.log_file(name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------------ probes

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            context = ssl.create_default_context(cafile=str(self.ca_file))
            pki = self.dir / "pki"
            context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
            self._ssl = context
        return self._ssl

    def _get_ok(self, url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2, context=self._tls()) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _exists(self, path: str) -> bool:
        try:
            self.request("GET", path)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            raise
        except OSError:
            return False
        return True

    def _established(self, name: str) -> bool:
        try:
            crd = self.request(
                "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
            )
        except (OSError, urllib.error.URLError):
            return False
        conditions = crd.get("status", {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    def _nodes_ready(self) -> bool:
        try:
            nodes = self.request("GET", "/api/v1/nodes").get("items") or []
        except (OSError, urllib.error.URLError):
            return False
        ready = [
            node
            for node in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in node.get("status", {}).get("conditions") or []
            )
            and not node.get("spec", {}).get("taints")  # the not-ready taint is gone
        ]
        return len(ready) >= self.nodes

    def _etcd(self, path: str, body: Obj) -> Obj:
        request = urllib.request.Request(
            f"{self.etcd_url}{path}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: Obj = json.loads(response.read())
            return answer

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=2) as r:
                return bool(json.loads(r.read()).get("health") == "true")
        except (OSError, urllib.error.URLError, ValueError):
            return False


def kwok_node(name: str) -> Obj:
    """A Node that kwok plays the kubelet of (kwok's documented fake node, without its taint
    so that ordinary Pods schedule there)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
            },
        },
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
            },
            "phase": "Running",
        },
    }


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="./dev cluster",
        description="Run a real Kubernetes control plane on 127.0.0.1 until Ctrl-C.",
    )
    parser.add_argument("--nodes", type=int, default=3, help="kwok Nodes (default 3)")
    parser.add_argument("--kubeconfig", type=Path, help="also write the admin kubeconfig here")
    parser.add_argument("--workdir", type=Path, help="keep certificates, etcd data, logs here")
    arguments = parser.parse_args(argv)

    def log(line: str) -> None:
        print(f"==> {line}", file=sys.stderr, flush=True)

    try:
        assets = ensure_assets(build=True, log=log)
    except AssetsMissingError as error:
        print(f"control plane: {error}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    plane = ControlPlane(workdir=arguments.workdir, nodes=arguments.nodes, assets=assets)
    log("starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok")
    try:
        plane.start()
    except ControlPlaneError as error:
        print(f"control plane: {error}", file=sys.stderr)
        return 1
    try:
        kubeconfig = plane.kubeconfig
        if arguments.kubeconfig is not None:
            kubeconfig = plane.write_kubeconfig(arguments.kubeconfig.resolve())
        print(
            f"control plane ready in {plane.startup_seconds:.1f}s at {plane.url} "
            f"(Kubernetes {plane.request('GET', '/version')['gitVersion']}, "
            f"{plane.nodes} kwok nodes)\n"
            f"kubeconfig: {kubeconfig}\n"
            f"logs:       {plane.dir / 'logs'}\n\n"
            "In another shell:\n"
            f"  export KUBECONFIG={kubeconfig} PATH={plane.bin_dir}:$PATH\n"
            "  kubectl get nodes\n"
            "  kubectl apply -f examples/ui/   # the CRDs are installed already\n"
            "  kubectl canary get -n shop -w\n"
            f"  canary demo --kubeconfig {kubeconfig}   # a release and a rollback here\n\n"
            "Ctrl-C stops it and removes everything.",
            flush=True,
        )
        stop.wait()
    finally:
        log("stopping the control plane")
        plane.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
