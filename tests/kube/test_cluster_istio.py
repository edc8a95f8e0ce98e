"""KubeCluster and Istio objects: read-modify-write of VirtualServices and DestinationRules.

Covers: the served Istio version found by discovery once; a mutation returning None sends no
write; a write carries the read resourceVersion and keeps unmanaged fields; 409 → fresh read
and re-mutate; conflicts exhausted → ConflictError; a missing object → NotFoundError naming
the Rollout field to fix. All but the injected conflicts run against both the sandbox and the
real control plane (Istio's own CRDs, with their schema and validation rules).
"""

from __future__ import annotations

from typing import Any

import pytest
from support.controlplane import ON_BOTH

from canary.kube.client import CONFLICT_ATTEMPTS, KubeCluster
from canary.kube.port import ConflictError, NotFoundError
from canary_sandbox.apiserver import ApiServer

WRITES = ("create", "update", "patch", "delete")


def writes(cluster: KubeCluster) -> int:
    return sum(n for (verb, _), n in cluster.request_counts.items() if verb in WRITES)


def set_weight(weight: int) -> Any:
    def mutate(vs: dict[str, Any]) -> dict[str, Any]:
        primary = vs["spec"]["http"][1]
        primary["route"] = [
            {"destination": {"host": "ui", "subset": "stable"}, "weight": 100 - weight},
            {"destination": {"host": "ui", "subset": "canary"}, "weight": weight},
        ]
        return vs

    return mutate


@ON_BOTH
def test_the_served_istio_version_is_discovered_once(cluster: KubeCluster, ui_objects: str):
    cluster.get_virtual_service(ui_objects, "ui")
    cluster.get_destination_rule(ui_objects, "ui")

    assert cluster.istio_version() == "v1"
    assert cluster.request_counts[("get", "discovery")] == 1


@ON_BOTH
def test_a_mutation_returning_none_sends_no_write(cluster: KubeCluster, ui_objects: str):
    before = cluster.get_virtual_service(ui_objects, "ui")

    result = cluster.update_virtual_service(ui_objects, "ui", lambda vs: None)

    assert result.written is False
    assert result.obj == before
    assert writes(cluster) == 0


@ON_BOTH
def test_an_update_writes_with_the_read_resource_version(cluster: KubeCluster, ui_objects: str):
    before = cluster.get_virtual_service(ui_objects, "ui")

    result = cluster.update_virtual_service(ui_objects, "ui", set_weight(10))

    assert result.written is True
    weights = [d["weight"] for d in result.obj["spec"]["http"][1]["route"]]
    assert weights == [90, 10]
    assert result.obj["spec"]["http"][0] == before["spec"]["http"][0]  # health route untouched
    assert result.obj["spec"]["http"][1]["retries"] == before["spec"]["http"][1]["retries"]
    assert int(result.obj["metadata"]["resourceVersion"]) > int(
        before["metadata"]["resourceVersion"]
    )
    assert cluster.request_counts[("update", "virtualservices")] == 1


@ON_BOTH
def test_the_mutation_gets_a_copy(cluster: KubeCluster, ui_objects: str):
    seen: list[dict[str, Any]] = []

    def remember_and_skip(vs: dict[str, Any]) -> None:
        vs["spec"]["hosts"].append("scribble")
        seen.append(vs)

    result = cluster.update_virtual_service(ui_objects, "ui", remember_and_skip)

    assert "scribble" not in result.obj["spec"]["hosts"]


def test_a_conflict_is_retried_from_a_fresh_read(
    cluster: KubeCluster, server: ApiServer, ui_objects: str
):
    server.faults.conflict_next(2, resource="virtualservices")
    reads: list[str] = []

    def mutate(vs: dict[str, Any]) -> dict[str, Any]:
        reads.append(vs["metadata"]["resourceVersion"])
        return set_weight(25)(vs)

    result = cluster.update_virtual_service(ui_objects, "ui", mutate)

    assert result.written is True
    assert len(reads) == 3
    assert server.request_log.count(verb="get", resource="virtualservices") == 3
    assert server.request_log.count(verb="update", resource="virtualservices") == 3


@ON_BOTH
def test_a_concurrent_writer_is_seen_by_the_next_attempt(cluster: KubeCluster, ui_objects: str):
    attempts: list[list[str]] = []

    def mutate(vs: dict[str, Any]) -> dict[str, Any]:
        attempts.append(list(vs["spec"]["hosts"]))
        if len(attempts) == 1:  # someone else writes between our read and our write
            other = cluster.get_virtual_service(ui_objects, "ui")
            other["spec"]["hosts"].append("ui.shop.svc.cluster.local")
            cluster.update_virtual_service(ui_objects, "ui", lambda _: other)
        return set_weight(50)(vs)

    result = cluster.update_virtual_service(ui_objects, "ui", mutate)

    assert attempts[1] == ["ui", "ui.shop.svc.cluster.local"]
    assert result.obj["spec"]["hosts"] == ["ui", "ui.shop.svc.cluster.local"]


def test_conflicts_exhausted_raise_conflict_error(
    cluster: KubeCluster, server: ApiServer, ui_objects: str
):
    server.faults.conflict_next(CONFLICT_ATTEMPTS, resource="virtualservices")

    with pytest.raises(ConflictError, match=r"VirtualService shop/ui kept changing"):
        cluster.update_virtual_service(ui_objects, "ui", set_weight(10))
    assert server.request_log.count(verb="update", resource="virtualservices") == 5


@ON_BOTH
def test_a_missing_virtual_service_names_the_fix(cluster: KubeCluster, ui_objects: str):
    with pytest.raises(NotFoundError) as raised:
        cluster.update_virtual_service(ui_objects, "web", set_weight(10))

    assert str(raised.value) == (
        f"VirtualService {ui_objects}/web not found: "
        "create it or fix spec.virtualService.name in the Rollout"
    )
    assert writes(cluster) == 0


@ON_BOTH
def test_destination_rules_update_the_same_way(cluster: KubeCluster, ui_objects: str):
    def move_stable(dr: dict[str, Any]) -> dict[str, Any]:
        dr["spec"]["subsets"][0]["labels"] = {"version": "v2"}
        return dr

    result = cluster.update_destination_rule(ui_objects, "ui", move_stable)
    unchanged = cluster.update_destination_rule(ui_objects, "ui", lambda dr: None)

    assert result.written is True
    assert cluster.get_destination_rule(ui_objects, "ui")["spec"]["subsets"][0]["labels"] == {
        "version": "v2"
    }
    assert unchanged.written is False
    assert cluster.request_counts[("update", "destinationrules")] == 1
    with pytest.raises(NotFoundError, match=r"fix spec.destinationRule.name"):
        cluster.get_destination_rule(ui_objects, "web")
