"""--shards on the REAL apiserver, within deploy/'s RBAC: two `canary controller --shards 4`
processes on the ServiceAccount's token, with deploy/'s Deployment arguments (--leader-elect
replaced by --shards 4), spread the 4 shard Leases 2 and 2 (`canary_shards_held`), then carry a
whole release (requests, a rollback, the Rollout's deletion): no 401 or 403, only verbs deploy/
grants (the Leases' list among them), and the release carried by one of them only: the replica
its shard's Lease names. SIGTERM to it: it hands its shards back and the other holds
all 4.
"""

# ruff: noqa: F811  (the `install` fixture of test_security, imported, is each test's argument)
from __future__ import annotations

import contextlib
import json
from pathlib import Path

from test_security import (  # noqa: F401  (install: the fixture)
    Install,
    a_whole_release,
    answers,
    assert_within_rbac,
    install,
)

from canary.core.shards import shard_lease_name, shard_of
from canary_sandbox.client import SandboxError
from canary_sandbox.polling import poll
from canary_sandbox.stack import ControllerProcess

SHARDS = 4


def sharded_args(install: Install) -> list[str]:
    args = [a for a in install.controller_args() if a != "--leader-elect"]
    assert len(args) == len(install.controller_args()) - 1, "deploy/ runs --leader-elect"
    return [*args, f"--shards={SHARDS}"]


def identity_of(controller: ControllerProcess) -> str | None:
    for line in controller.logs().splitlines():
        if line.startswith("{") and '"shard acquired"' in line:
            return str(json.loads(line)["identity"])
    return None


def released_ui(controller: ControllerProcess, install: Install) -> bool:
    """Whether this replica's log tells of the release of the app's `ui` Rollout. (Its request
    counts cannot: the session's control plane still holds other tests' Rollouts, in namespaces
    being deleted, which both replicas reconcile for their shards.)"""
    for line in controller.logs().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if (entry.get("namespace"), entry.get("rollout")) == (install.app, "ui"):
                return True
    return False


def finalize_leftovers(install: Install) -> None:
    """Other tests' Rollouts in namespaces being deleted have their finalizer dropped as the
    admin, and are gone before the replicas start: the replicas would finalize them for their
    shards, and the Events they record there be refused (403: a namespace being terminated
    takes no new objects), which says nothing of the RBAC under test."""
    client = install.plane.client()

    def pending() -> list[str]:
        namespaces = client.request("GET", "/api/v1/namespaces").get("items") or []
        terminating = {
            n["metadata"]["name"] for n in namespaces if n["status"].get("phase") == "Terminating"
        }
        listed = client.request("GET", "/apis/canary.dev/v1alpha1/rollouts")
        paths = [
            client.path_of(item)
            for item in listed.get("items") or []
            if item["metadata"]["namespace"] in terminating
        ]
        for path in paths:
            with contextlib.suppress(SandboxError):
                client.merge_patch(path, {"metadata": {"finalizers": None}})
        return paths

    poll(lambda: not pending(), 120, "other tests' Rollouts gone", every=0.5)


def holders(install: Install) -> dict[int, str]:
    client = install.plane.client()
    found = {}
    for shard in range(SHARDS):
        name = shard_lease_name(shard, SHARDS)
        lease = client.get("coordination.k8s.io/v1", "Lease", install.system, name)
        found[shard] = (lease.get("spec") or {}).get("holderIdentity") or ""
    return found


def test_two_sharded_replicas_share_the_work_within_the_rbac(
    install: Install, tmp_path: Path
) -> None:
    finalize_leftovers(install)
    controllers = [
        ControllerProcess(install.kubeconfig, tmp_path / f"controller-{n}.log",
                          extra_args=sharded_args(install))
        for n in range(2)
    ]  # fmt: skip
    with contextlib.ExitStack() as running:
        for controller in controllers:
            running.enter_context(controller)

        def spread() -> bool:
            return all(c.metric("canary_shards_held") == 2 for c in controllers)

        poll(spread, 120, "the shards spread 2 and 2", every=0.5)
        a_whole_release(install)
        counted = [answers(controller) for controller in controllers]
        assert any(n.get(("patch", "rollouts/status", "200")) for n in counted), counted
        writers = [c for c in controllers if released_ui(c, install)]
        assert len(writers) == 1, [c.logs() for c in controllers]
        [writer] = writers
        [other] = [c for c in controllers if c is not writer]
        shard = shard_of(f"{install.app}/ui", SHARDS)
        assert holders(install)[shard] == identity_of(writer)

        writer.stop()  # SIGTERM: it hands its shards back
        poll(lambda: other.metric("canary_shards_held") == SHARDS, 60, "the other taking all")
        assert set(holders(install).values()) == {identity_of(other)}
        assert writer.logs().count('"shard handed back"') >= 2
        assert other.metric("canary_shard_handovers_total", direction="acquired") >= 4
    merged: dict[tuple[str, str, str], float] = {}
    for each in counted:
        for key, value in each.items():
            merged[key] = merged.get(key, 0) + value
    assert any(key[:2] == ("list", "leases") for key in merged), merged
    assert_within_rbac(merged, "".join(controller.logs() for controller in controllers))
