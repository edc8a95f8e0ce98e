"""The controller's user agent, `canary-controller/<version> (<identity>)`, as the real
apiserver takes it (ON_REAL: the sandbox keeps no managedFields): its first word is the field
manager of every write, the name Argo CD's `managedFieldsManagers` and `kubectl` show, the
same for every replica; the identity in parentheses tells the replicas apart in the audit log.
"""

from __future__ import annotations

import threading
from pathlib import Path

from kubernetes import client
from support.controlplane import ON_REAL

from canary.controller.main import FIELD_MANAGER, user_agent
from canary.core.objects import Obj
from canary.kube.client import KubeCluster
from canary.kube.informers import CachedCluster


def test_the_user_agent_names_the_replica() -> None:
    agent = user_agent("replica-a")
    assert agent.startswith(f"{FIELD_MANAGER}/") and agent.endswith(" (replica-a)")


@ON_REAL
def test_a_write_is_managed_by_canary_controller(kubeconfig: Path, namespace: str) -> None:
    cluster = KubeCluster.from_kubeconfig(
        str(kubeconfig), qps=0, user_agent=user_agent("replica-a")
    )
    assert cluster.try_acquire_lease(namespace, "canary-shard-0-of-2", "replica-a", 15)
    [lease] = cluster.list_leases(namespace, "canary-shard-0-of-2")
    managers = {entry["manager"] for entry in lease["metadata"]["managedFields"]}
    assert managers == {FIELD_MANAGER}


@ON_REAL
def test_a_write_from_the_trimmed_cache_keeps_the_others_managed_fields(
    kubeconfig: Path, ui_objects: str, custom: client.CustomObjectsApi
) -> None:
    """The caches keep objects without managedFields; a PUT of one keeps every other manager's
    entries (Argo CD's server-side diff reads them) and adds the controller's."""
    namespace, stop = ui_objects, threading.Event()
    kube = KubeCluster.from_kubeconfig(str(kubeconfig), qps=0, user_agent=user_agent("replica-a"))
    cached = CachedCluster(kube, namespace)
    cached.start(stop)
    try:
        assert cached.wait_synced(30)
        assert "managedFields" not in cached.get_virtual_service(namespace, "ui")["metadata"]

        def annotate(vs: Obj) -> Obj:
            metadata = {**vs["metadata"], "annotations": {"canary.dev/test": "1"}}
            return {**vs, "metadata": metadata}

        cached.update_virtual_service(namespace, "ui", annotate)
    finally:
        stop.set()
    stored = custom.get_namespaced_custom_object(
        "networking.istio.io", "v1", namespace, "virtualservices", "ui"
    )
    managers = {entry["manager"] for entry in stored["metadata"]["managedFields"]}
    assert managers == {"OpenAPI-Generator", FIELD_MANAGER}
    assert stored["metadata"]["annotations"] == {"canary.dev/test": "1"}
