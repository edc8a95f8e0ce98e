"""The chart on the real control plane (RBAC enforced): `helm install` into a namespace of its
own, after which two controller processes on the chart's ServiceAccount token, with the chart's
Deployment's arguments, drive a whole release (pause, resume, promote, abort, deletion) with no
401 or 403 (cluster-wide and namespaced RBAC); `helm upgrade` and `helm uninstall` keep the CRD,
and a Rollout in it survives both. The CRD comes from the chart's crds/ (the session's control
plane already has the same one: helm leaves an existing CRD as it is)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_helpers import CHART, helm_run, one, set_args
from reliability.test_security import Install, assert_a_whole_release_gets_no_403

from canary_sandbox.controlplane import ControlPlane
from canary_sandbox.stack import example_objects, example_release, version_deployment

CRD = "rollouts.canary.dev"


def release_name(namespace: str) -> str:
    """Unique in the session (ClusterRoles are cluster-wide), within helm's 53 characters."""
    return namespace[:40].rstrip("-")


def manifest(plane: ControlPlane, release: str, namespace: str) -> list[dict[str, Any]]:
    shown = helm_run("get", "manifest", release, "-n", namespace, kubeconfig=plane.kubeconfig)
    return [d for d in yaml.safe_load_all(shown.stdout) if d]


def crd_uid_of(plane: ControlPlane) -> str:
    return plane.kubectl("get", "crd", CRD, "-o", "jsonpath={.metadata.uid}").stdout


@pytest.fixture
def helm_install(
    request: pytest.FixtureRequest, control_plane: ControlPlane, real_namespace: str,
    tmp_path: Path,
) -> Iterator[Install]:  # fmt: skip
    """The chart installed by `helm install` (cluster-wide RBAC, or parametrised "namespace":
    a Role in the test's namespace) into `<test namespace>-sys`; examples/ui in the test's
    namespace with ui-v1, ui-v2 and ui-v3 really Ready (kwok)."""
    scope = getattr(request, "param", "cluster")
    system, release = f"{real_namespace}-sys"[:63], release_name(real_namespace)
    values = {"rbac.scope": scope}
    if scope == "namespace":
        values["rbac.watchNamespace"] = real_namespace
    admin = control_plane.kubeconfig
    helm_run("install", release, str(CHART), "-n", system, "--create-namespace",
             *set_args(values), kubeconfig=admin)  # fmt: skip
    try:
        control_plane.wait_for_deployment(system, f"{release}-controller")
        control_plane.wait_for_service_account(system, f"{release}-controller")
        token = control_plane.create_token(system, f"{release}-controller")
        kubeconfig = control_plane.write_kubeconfig(tmp_path / "controller", {"token": token})
        client = control_plane.client()
        for obj in [*example_objects(real_namespace), version_deployment("v3", real_namespace)]:
            client.apply(obj)
        for version in ("v1", "v2", "v3"):
            control_plane.wait_for_deployment(real_namespace, f"ui-{version}")
        objects = manifest(control_plane, release, system)
        yield Install(control_plane, system, real_namespace, objects, kubeconfig)
    finally:
        helm_run("uninstall", release, "-n", system, check=False, kubeconfig=admin)
        control_plane.delete_namespace(system)


@pytest.mark.parametrize("helm_install", ["cluster", "namespace"], indirect=True)
def test_after_helm_install_a_whole_release_on_the_charts_token_gets_no_403(
    helm_install: Install, tmp_path: Path
) -> None:
    deployment = one(helm_install.objects, "Deployment")
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert helm_install.kubeconfig.is_file() and account.endswith("-controller")
    assert_a_whole_release_gets_no_403(helm_install, tmp_path)


def test_helm_upgrade_and_uninstall_keep_the_crd_and_its_rollouts(
    control_plane: ControlPlane, real_namespace: str
) -> None:
    system, release = f"{real_namespace}-sys"[:63], release_name(real_namespace)
    admin = control_plane.kubeconfig
    client = control_plane.client()
    helm_run("install", release, str(CHART), "-n", system, "--create-namespace",
             kubeconfig=admin)  # fmt: skip
    try:
        rollout = example_release()
        rollout["metadata"]["namespace"] = real_namespace
        client.apply(rollout)
        crd_uid = crd_uid_of(control_plane)
        rollout_uid = client.get("canary.dev/v1alpha1", "Rollout", real_namespace, "ui")[
            "metadata"
        ]["uid"]
        helm_run("upgrade", release, str(CHART), "-n", system,
                 *set_args({"logLevel": "debug", "replicas": "1"}), kubeconfig=admin)  # fmt: skip
        status = helm_run("status", release, "-n", system, kubeconfig=admin).stdout
        assert "REVISION: 2" in status and "STATUS: deployed" in status, status
        deployment = client.get("apps/v1", "Deployment", system, f"{release}-controller")
        assert deployment["spec"]["replicas"] == 1
        assert (
            "--log-level=debug" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        )

        def kept() -> None:
            assert crd_uid_of(control_plane) == crd_uid
            found = client.get("canary.dev/v1alpha1", "Rollout", real_namespace, "ui")
            assert found["metadata"]["uid"] == rollout_uid

        kept()
        helm_run("uninstall", release, "-n", system, kubeconfig=admin)
        kept()
        assert control_plane.kubectl("get", "clusterrole", f"{release}-controller",
                                     check=False).returncode != 0  # fmt: skip
    finally:
        helm_run("uninstall", release, "-n", system, check=False, kubeconfig=admin)
        control_plane.delete_namespace(system)
