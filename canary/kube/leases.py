"""Leader-election Leases (coordination.k8s.io/v1) as plain data: who may write what.

A Lease is ours to write when it is missing, when we hold it (renew), or when its holder
let it expire: `renewTime + leaseDurationSeconds < now`. The adapter writes with the read
resourceVersion, so of two candidates racing for an expired Lease exactly one wins.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from canary.core.objects import Obj
from canary.core.shards import LeaseView
from canary.kube.events import parse_time


def micro_time(moment: datetime) -> str:
    """Kubernetes `MicroTime`: RFC3339 with microseconds, UTC, `Z` suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_moment(now: datetime) -> datetime:
    """`now`, never on a whole second: the typed client re-serialises MicroTime with
    `datetime.isoformat()`, which drops a zero fraction that the API's MicroTime requires."""
    return now if now.microsecond else now.replace(microsecond=1)


def new_lease(namespace: str, name: str, identity: str, duration: int, now: datetime) -> Obj:
    now = lease_moment(now)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "holderIdentity": identity,
            "leaseDurationSeconds": duration,
            "acquireTime": micro_time(now),
            "renewTime": micro_time(now),
            "leaseTransitions": 0,
        },
    }


def expired(spec: Obj, now: datetime) -> bool:
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    if renewed is None:
        return True
    duration = spec.get("leaseDurationSeconds") or 0
    return renewed + timedelta(seconds=duration) < now


def claim(lease: Obj, identity: str, duration: int, now: datetime) -> Obj | None:
    """The Lease to write to hold it from `now`, or None when another holder still has it."""
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity")
    if holder and holder != identity and not expired(spec, now):
        return None
    now = lease_moment(now)
    claimed = copy.deepcopy(lease)
    new_spec = claimed.setdefault("spec", {})
    new_spec["renewTime"] = micro_time(now)
    new_spec["leaseDurationSeconds"] = duration
    if holder != identity:
        new_spec["holderIdentity"] = identity
        new_spec["acquireTime"] = micro_time(now)
        new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
    return claimed


def released(lease: Obj, identity: str, now: datetime) -> Obj | None:
    """The Lease to write to hand it back (no holder, as client-go's ReleaseOnCancel does), or
    None when `identity` does not hold it (any more)."""
    spec = lease.get("spec") or {}
    if spec.get("holderIdentity") != identity:
        return None
    given = copy.deepcopy(lease)
    given["spec"]["holderIdentity"] = ""
    given["spec"]["renewTime"] = micro_time(lease_moment(now))
    return given


def view(lease: Obj) -> LeaseView:
    """What the Lease says of its holder, as the pure shard decisions read it."""
    spec = lease.get("spec") or {}
    meta = lease.get("metadata") or {}
    return LeaseView(
        name=str(meta.get("name") or ""),
        holder=spec.get("holderIdentity") or None,
        renewed=parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime")),
        duration_seconds=float(spec.get("leaseDurationSeconds") or 0),
        version=str(meta.get("resourceVersion") or ""),
    )
