"""Sandbox API server, driven by the real `kubectl` with validation on, as users run it.

Covers: `kubectl apply -f` of the bundled Istio CRDs and then of a VirtualService and a
DestinationRule (create, then apply after a change: the merge-patch path), `kubectl get vs`,
`get -o yaml`, `patch --type merge`, `get crd`, `delete`, and the errors kubectl prints for a
schema violation and for an unknown field. Runs against the kubectl built with the control plane
(v1.35), the machine's kubectl (v1.32) and the versioned binaries beside it. Skipped without
kubectl, except under CI=true where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support.binaries import FINDERS, require_binary

from canary_sandbox.apiserver import ApiServer, bundled_crd_paths

pytestmark = pytest.mark.kubectl

VIRTUAL_SERVICE = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ui
  namespace: default
spec:
  hosts: [ui]
  http:
    - name: primary
      match: [{headers: {version: {exact: beta}}}]
      route:
        - destination: {host: ui, subset: stable}
          weight: WEIGHT
      retries: {attempts: 3}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: ui
  namespace: default
spec:
  host: ui
  subsets:
    - {name: stable, labels: {version: v1}}
    - {name: canary, labels: {version: v2}}
"""


BUILT = FINDERS["kubectl"]()


def kubectl_binaries() -> list[str]:
    """The kubectl built with the control plane, then the machine's and the versioned ones
    beside it (kubectl.1.27 and kubectl.1.33), when there are."""
    built = BUILT
    elsewhere = os.pathsep.join(
        entry
        for entry in os.environ.get("PATH", "").split(os.pathsep)
        if built is None or Path(entry) != Path(built).parent
    )
    found = shutil.which("kubectl", path=elsewhere)
    machine: list[str] = []
    if found is not None:
        directory = Path(os.path.realpath(found)).parent
        versioned = [directory / f"kubectl.{minor}" for minor in ("1.27", "1.33")]
        machine = [found, *(str(path) for path in versioned if path.exists())]
    return [*([built] if built else []), *machine]


BINARIES = kubectl_binaries()


@pytest.fixture(
    params=BINARIES or ["kubectl"], ids=lambda path: "built" if path == BUILT else Path(path).name
)
def kubectl_binary(request: pytest.FixtureRequest) -> str:
    if not BINARIES:
        require_binary("kubectl")
    binary: str = request.param
    return binary


class Kubectl:
    def __init__(self, binary: str, kubeconfig: Path, cache: Path) -> None:
        self.base = [binary, "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache)]

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.base, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture
def bare_server() -> Iterator[ApiServer]:
    with ApiServer() as server:
        yield server


@pytest.fixture
def kubectl(kubectl_binary: str, bare_server: ApiServer, tmp_path: Path) -> Kubectl:
    kubeconfig = bare_server.write_kubeconfig(tmp_path / "kubeconfig")
    return Kubectl(kubectl_binary, kubeconfig, tmp_path / "cache")


def apply_istio_crds(kubectl: Kubectl) -> None:
    for path in bundled_crd_paths():
        assert "created" in kubectl.ok("apply", "-f", str(path))


def test_apply_get_patch_delete_virtual_service(kubectl: Kubectl, tmp_path: Path) -> None:
    apply_istio_crds(kubectl)
    crds = kubectl.ok("get", "crd")
    assert "virtualservices.networking.istio.io" in crds
    assert "destinationrules.networking.istio.io" in crds

    manifest = tmp_path / "ui.yaml"
    manifest.write_text(VIRTUAL_SERVICE.replace("WEIGHT", "100"))
    created = kubectl.ok("apply", "-f", str(manifest))
    assert "virtualservice.networking.istio.io/ui created" in created
    assert "destinationrule.networking.istio.io/ui created" in created

    manifest.write_text(VIRTUAL_SERVICE.replace("WEIGHT", "90"))
    again = kubectl.ok("apply", "-f", str(manifest))
    assert "virtualservice.networking.istio.io/ui configured" in again
    assert "destinationrule.networking.istio.io/ui unchanged" in again

    listing = kubectl.ok("get", "vs")
    assert listing.splitlines()[0].split() == ["NAME", "GATEWAYS", "HOSTS", "AGE"]
    assert listing.splitlines()[1].split()[0] == "ui"
    assert "ui" in kubectl.ok("get", "dr")

    shown = yaml.safe_load(kubectl.ok("get", "virtualservice", "ui", "-o", "yaml"))
    route = shown["spec"]["http"][0]
    assert route["route"][0]["weight"] == 90
    assert route["retries"] == {"attempts": 3}  # preserved unknown field
    assert shown["metadata"]["generation"] == 2

    kubectl.ok("patch", "vs", "ui", "--type", "merge", "-p", '{"spec":{"gateways":["mesh"]}}')
    patched = yaml.safe_load(kubectl.ok("get", "vs", "ui", "-o", "yaml"))
    assert patched["spec"]["gateways"] == ["mesh"]
    assert patched["metadata"]["generation"] == 3

    assert 'virtualservice.networking.istio.io "ui" deleted' in kubectl.ok("delete", "vs", "ui")
    missing = kubectl.run("get", "vs", "ui")
    assert missing.returncode != 0
    assert 'virtualservices.networking.istio.io "ui" not found' in missing.stderr


def test_schema_violation_is_printed_with_field_path(kubectl: Kubectl, tmp_path: Path) -> None:
    apply_istio_crds(kubectl)
    manifest = tmp_path / "ui.yaml"
    manifest.write_text(VIRTUAL_SERVICE.replace("WEIGHT", '"lots"'))
    result = kubectl.run("apply", "-f", str(manifest))
    assert result.returncode != 0
    assert 'The VirtualService "ui" is invalid' in result.stderr
    assert "spec.http[0].route[0].weight" in result.stderr
    assert "must be of type integer" in result.stderr


def test_unknown_field_is_rejected_by_strict_validation(kubectl: Kubectl, tmp_path: Path) -> None:
    apply_istio_crds(kubectl)
    manifest = tmp_path / "ui.yaml"
    with_typo = VIRTUAL_SERVICE.replace("WEIGHT", "100").replace(
        "retries: {attempts: 3}", "retries: {attempts: 3}\n      mirrorPercentage: {valeu: 5}"
    )
    manifest.write_text(with_typo)
    result = kubectl.run("apply", "-f", str(manifest))
    assert result.returncode != 0
    assert 'unknown field "spec.http[0].mirrorPercentage.valeu"' in result.stderr


def test_server_side_apply_and_namespaces(kubectl: Kubectl, tmp_path: Path) -> None:
    apply_istio_crds(kubectl)
    assert "namespace/shop created" in kubectl.ok("create", "namespace", "shop")  # protobuf body
    kubectl.ok("create", "configmap", "settings", "-n", "shop", "--from-literal=a=b")
    assert kubectl.ok("get", "cm", "settings", "-n", "shop", "-o", "jsonpath={.data.a}") == "b"
    manifest = tmp_path / "ui.yaml"
    manifest.write_text(VIRTUAL_SERVICE.replace("WEIGHT", "100").replace("default", "shop"))
    assert "serverside-applied" in kubectl.ok("apply", "--server-side", "-f", str(manifest))
    everywhere = kubectl.ok("get", "vs", "-A")
    assert "shop" in everywhere
