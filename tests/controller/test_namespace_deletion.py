"""A namespace deleted mid-release, with `canary controller` running (real control plane only:
the sandbox has no namespace controller and deletes a namespace with its content at once, see
docs/sandbox-vs-real.md).

Covers: the namespace controller deletes the namespace's content while a release runs; the
Rollout, held by its finalizer, is handed back by the controller (whatever of the mesh is still
there) and its finalizer removed; the garbage collector removes the Deployments' ReplicaSets
and Pods; the namespace disappears.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

from controller_helpers import Env
from support.controlplane import ON_REAL
from support.polling import wait_until
from support.rollouts import quick_rollout
from support.traffic import managed_route

from canary_sandbox.stack import ControllerProcess

# The namespace controller retries content it could not delete yet with back-off, so a
# namespace whose last finalizer goes late takes a while to finish (6000 polls of 25 ms).
NAMESPACE_SECONDS = 150.0


def gone(env: Env) -> bool:
    assert env.plane is not None
    try:
        env.plane.request("GET", f"/api/v1/namespaces/{env.namespace}")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return True
        raise
    return False


def mirrored(env: Env) -> bool:
    """The release at its mirror stage, in the status and then in the VirtualService (the
    status is written first)."""
    if (env.rollout().get("status") or {}).get("stage") != "mirror":
        return False
    return bool(managed_route(env.vs()).get("mirror") == {"host": "ui", "subset": "canary"})


@ON_REAL
def test_deleting_the_namespace_mid_release_finishes(env: Env, tmp_path: Path) -> None:
    assert env.plane is not None
    rollout = quick_rollout()
    rollout["spec"]["prometheus"] = {"url": "http://127.0.0.1:9", "timeout": "1s"}
    controller = ControllerProcess(
        env.kubeconfig, tmp_path / "controller.log", ("--namespace", env.namespace)
    )
    with controller:
        env.apply(rollout)
        wait_until(lambda: mirrored(env), "the release at the mirror", timeout=60.0)
        pods = env.client.request("GET", f"/api/v1/namespaces/{env.namespace}/pods")["items"]
        assert len(pods) == 4  # ui-v1's and ui-v2's, on kwok Nodes

        env.plane.delete_namespace(env.namespace)
        wait_until(lambda: gone(env), "the namespace gone", timeout=NAMESPACE_SECONDS)
        logs = controller.logs()
    assert "rollout deleted; route handed back to stable" in logs, logs
