"""The judge of `benchmarks/failover.py` catches what it must count, on audit lines written here:
a write by a replica whose shard Lease another replica holds, one Rollout written by two
replicas in turn, a step skipped and a step begun twice. A judge that cannot see them would
report zeros from any run."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import failover

from canary.core.shards import shard_lease_name, shard_of

SHARDS = 2
KEY = "team-00/svc-00000"
SHARD = shard_of(KEY, SHARDS)


def line(at: float, writer: str, resource: str, name: str, body: dict[str, Any]) -> str:
    stamp = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
    group, _, sub = resource.partition("/")
    namespace = "canary-system" if resource == "leases" else "team-00"
    return json.dumps(
        {
            "stage": "ResponseComplete",
            "userAgent": f"canary-controller/0.1.0 ({writer})",
            "responseStatus": {"code": 200},
            "objectRef": {
                "resource": group,
                "subresource": sub or None,
                "namespace": namespace,
                "name": name,
            },
            "requestReceivedTimestamp": stamp,
            "stageTimestamp": stamp,
            "requestObject": body,
        }
    )


def lease(at: float, holder: str | None) -> str:
    name = shard_lease_name(SHARD, SHARDS)
    return line(at, holder or "a", "leases", name, {"spec": {"holderIdentity": holder}})


def status(at: float, writer: str, step: int, started: str) -> str:
    body = {"status": {"stage": "split", "stepIndex": step, "stepStartedAt": started}}
    return line(at, writer, "rollouts/status", "svc-00000", body)


def judged(tmp_path: Path, lines: list[str]) -> dict[str, Any]:
    log = tmp_path / "audit.log"
    log.write_text("\n".join(lines) + "\n")
    timeline = failover.Timeline(releasing=[KEY], killed="a", kill_at=35.0, killed_shards=[SHARD])
    options = argparse.Namespace(rollouts=1, releasing=1, shards=SHARDS)
    return failover.judge(failover.read_audit(log), timeline, options, ["Succeeded"])


def test_a_clean_takeover_counts_nothing(tmp_path: Path) -> None:
    figures = judged(
        tmp_path,
        [
            lease(10, "a"),
            status(11, "a", 0, "t0"),
            status(21, "a", 1, "t1"),
            lease(50, "b"),
            status(52, "b", 1, "t1"),
            status(61, "b", 2, "t2"),
        ],
    )
    assert figures["writes by a replica not holding the shard"] == 0
    assert figures["Rollouts whose writer changed without a Lease handover"] == 0
    assert (figures["steps skipped"], figures["steps repeated"]) == (0, 0)
    assert figures["SIGKILL: takeover p50 / p99 (s)"] == "15.0 / 15.0"
    assert figures["SIGKILL: its releases' next write p50 / p99 (s)"] == "17.0 / 17.0"


def test_two_writers_a_skip_and_a_repeat_are_counted(tmp_path: Path) -> None:
    figures = judged(
        tmp_path,
        [
            lease(10, "a"),
            status(11, "a", 0, "t0"),
            lease(20, "b"),
            status(21, "a", 1, "t1"),  # a writes after b took the shard
            status(22, "b", 3, "t3"),  # skips step 2
            status(23, "a", 3, "t3b"),  # a again, and step 3 begun a second time
        ],
    )
    assert figures["writes by a replica not holding the shard"] == 2
    assert figures["Rollouts whose writer changed without a Lease handover"] == 1
    assert (figures["steps skipped"], figures["steps repeated"]) == (1, 1)


def test_a_write_after_the_lease_was_handed_back_is_counted(tmp_path: Path) -> None:
    figures = judged(tmp_path, [lease(10, "a"), lease(20, None), status(21, "a", 0, "t0")])
    assert figures["writes by a replica not holding the shard"] == 1
