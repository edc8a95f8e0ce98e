"""Sharded replicas failing over on the real control plane, judged from kube-apiserver's audit log.

Three `canary controller --shards S` processes share N Rollouts (most of them holding at split
10 % with a one-hour step, as in `scale.py`; R of them releasing, a step every 20 s). Then:

1. one replica is SIGKILLed mid-release; the other two take its shards once their Leases expire;
2. a replacement starts (what a Deployment does for a killed Pod) and gets its share;
3. a rolling restart replaces the three, one at a time, as a Deployment's rolling update does
   (`maxSurge: 1`, `maxUnavailable: 0`: the new replica is ready before the old gets SIGTERM);
4. every release runs to its end.

The judge is the apiserver's audit log (every write with its user agent, which names the
replica, and the Lease and status bodies), not anything the replicas say of themselves:

- takeover: from the SIGKILL (or the SIGTERM) to a live replica's acquisition of each shard the
  stopped one held (p50, p99), and to each of its releasing Rollouts' next status write;
- two writers: every write to a Rollout, its VirtualService or DestinationRule must come from the
  replica that held the Rollout's shard Lease at that moment (the Lease's last successful write
  before the write's answer); a write by any other replica counts, as does one Rollout written by
  two replicas whose writes interleave;
- steps: each release's step index, replayed from its status patches, must go up one at a time
  (skipped: a jump; repeated: a step begun twice), and every release must end Succeeded.

    .venv/bin/python benchmarks/failover.py            # 10,000 Rollouts, 300 releasing, 30 shards
    .venv/bin/python benchmarks/failover.py --small    # 600 Rollouts, 60 releasing, 12 shards
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import itertools
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import scale

LEASE_NAMESPACE = "canary-system"
RELEASING = "canary.dev/benchmark=releasing"
STEPS = list(range(5, 100, 5))  # 19 steps, 20 s each: a release of about 7 minutes
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {
            "level": "Request",
            "verbs": ["create", "update", "patch", "delete"],
            "resources": [
                {"group": "canary.dev", "resources": ["rollouts", "rollouts/status"]},
                {
                    "group": "networking.istio.io",
                    "resources": ["virtualservices", "destinationrules"],
                },
                {"group": "coordination.k8s.io", "resources": ["leases"]},
            ],
        },
        {"level": "None"},
    ],
}


# ---------------------------------------------------------------- the replicas


@dataclass
class Replica:
    identity: str
    process: subprocess.Popen[bytes]
    port: int
    started: float = field(default_factory=time.time)
    stopped: float | None = None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, signum: signal.Signals) -> None:
        self.stopped = time.time()
        self.process.send_signal(signum)
        self.process.wait(timeout=60)


class Fleet:
    def __init__(self, kubeconfig: Path, shards: int, logs: Path) -> None:
        self.kubeconfig, self.shards, self.logs = kubeconfig, shards, logs
        self.replicas: list[Replica] = []

    def start(self) -> Replica:
        identity, port = f"replica-{len(self.replicas)}", scale.free_port()
        log = (self.logs / f"{identity}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "canary", "controller", "--kubeconfig", str(self.kubeconfig),
             "--shards", str(self.shards), "--lease-namespace", LEASE_NAMESPACE,
             "--identity", identity, "--metrics-addr", f"127.0.0.1:{port}",
             "--qps", "1000", "--burst", "2000", "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        replica = Replica(identity, process, port)
        self.replicas.append(replica)
        return replica

    def alive(self) -> list[Replica]:
        return [r for r in self.replicas if r.stopped is None]

    def stop_all(self) -> None:
        for replica in self.alive():
            with contextlib.suppress(subprocess.TimeoutExpired):
                replica.stop(signal.SIGTERM)


# ---------------------------------------------------------------- the cluster, as its admin


def list_all(plane: Any, path: str) -> Iterator[dict[str, Any]]:
    """Every item of a collection, 500 at a time (a page the loaded apiserver is slow to send
    is asked for again)."""
    token = ""
    while True:
        separator = "&" if "?" in path else "?"
        page = read_page(plane, f"{path}{separator}limit=500&continue={token}")
        yield from page.get("items") or []
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return


def read_page(plane: Any, path: str, attempts: int = 5) -> dict[str, Any]:
    for attempt in range(attempts):
        try:
            return dict(plane.request("GET", path))
        except (TimeoutError, urllib.error.URLError):
            if attempt == attempts - 1:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


def lease_holders(plane: Any, shards: int) -> dict[int, str | None]:
    from canary.core.shards import shard_in
    from canary.kube.leases import view

    holders: dict[int, str | None] = {}
    now = datetime.now().astimezone()
    for lease in list_all(
        plane, f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
    ):
        seen = view(lease)
        shard = shard_in(seen.name, shards)
        if shard is not None:
            holders[shard] = seen.holder if seen.alive(now) else None
    return holders


def wait_for(what: str, done: Callable[[], bool], timeout: float, every: float = 2.0) -> None:
    """`poll` (AssertionError after `timeout`), printing how long it took."""
    from canary_sandbox.polling import poll

    began = time.monotonic()
    poll(done, timeout, what, every=every)
    print(f"  {what}: {time.monotonic() - began:.0f} s", flush=True)


def spread(plane: Any, shards: int, identities: set[str]) -> bool:
    """Every shard held by one of `identities`, floor or ceil of S/n each."""
    holders = lease_holders(plane, shards)
    if len(holders) < shards or not set(holders.values()) <= identities:
        return False
    counts = [list(holders.values()).count(i) for i in identities]
    return max(counts) - min(counts) <= 1


def releasing_rollouts(plane: Any) -> list[dict[str, Any]]:
    return list(list_all(plane, f"/apis/canary.dev/v1alpha1/rollouts?labelSelector={RELEASING}"))


def all_checked(plane: Any, count: int) -> bool:
    rollouts = list_all(plane, "/apis/canary.dev/v1alpha1/rollouts")
    return sum(1 for r in rollouts if (r.get("status") or {}).get("lastAnalysis")) >= count


def step_of(rollout: dict[str, Any]) -> int:
    status = rollout.get("status") or {}
    return int(status.get("stepIndex") or 0) if status.get("stage") == "split" else -1


def releasing_objects(
    index: int, url: str, options: argparse.Namespace
) -> tuple[dict[str, Any], ...]:
    """`scale.objects` for a Rollout that releases: noData passes, a step every 20 s."""
    vs, dr, rollout = scale.objects(index, url, options)
    rollout["metadata"] = {**rollout["metadata"], "labels": {"canary.dev/benchmark": "releasing"}}
    spec = rollout["spec"]
    spec["stages"]["split"] = {"steps": STEPS, "interval": "20s"}
    spec["analysis"]["noData"] = "pass"
    return vs, dr, rollout


# ---------------------------------------------------------------- the run


@dataclass
class Timeline:
    killed: str = ""
    kill_at: float = 0.0
    killed_shards: list[int] = field(default_factory=list)
    terms: list[tuple[str, float, list[int]]] = field(
        default_factory=list
    )  # replica, SIGTERM, its shards
    releasing: list[str] = field(default_factory=list)  # the releasing Rollouts' keys


@dataclass
class Bench:
    plane: Any
    fleet: Fleet
    options: argparse.Namespace
    url: str  # the stub Prometheus
    timeline: Timeline = field(default_factory=Timeline)

    def held_by(self, identity: str) -> list[int]:
        holders = lease_holders(self.plane, self.options.shards)
        return sorted(shard for shard, holder in holders.items() if holder == identity)

    def wait_spread(self, what: str, timeout: float, every: float = 1.0) -> None:
        alive = {replica.identity for replica in self.fleet.alive()}
        wait_for(what, lambda: spread(self.plane, self.options.shards, alive), timeout, every)

    def populate(self, holding: int) -> None:
        print(
            f"populating {holding} holding Rollouts, VirtualServices, DestinationRules", flush=True
        )
        began = time.monotonic()
        create = scale.admin_create(self.plane)
        scale.populate(
            create, self.url, argparse.Namespace(**{**vars(self.options), "rollouts": holding})
        )
        print(f"  populated: {time.monotonic() - began:.0f} s", flush=True)

    def start_releases(self, first: int) -> None:
        create = scale.admin_create(self.plane)
        for index in range(first, self.options.rollouts):
            for obj in releasing_objects(index, self.url, self.options):
                create(obj)
            namespace, name = f"team-{index % scale.NAMESPACES:02d}", f"svc-{index:05d}"
            self.timeline.releasing.append(f"{namespace}/{name}")
        wait_for(
            f"{self.options.releasing} releases at step 2 or later",
            lambda: all(step_of(r) >= 2 for r in releasing_rollouts(self.plane)),
            600,
        )

    def kill_one(self) -> None:
        victim = self.fleet.alive()[0]
        self.timeline.killed, self.timeline.killed_shards = (
            victim.identity,
            self.held_by(victim.identity),
        )
        victim.stop(signal.SIGKILL)
        self.timeline.kill_at = victim.stopped or time.time()
        print(f"SIGKILL {victim.identity} (shards {self.timeline.killed_shards})", flush=True)
        self.wait_spread("its shards taken over", 120, 0.5)
        self.fleet.start()  # the Deployment's replacement for the killed Pod
        self.wait_spread("the replacement holding its share", 300)

    def rolling_restart(self) -> None:
        print("rolling restart", flush=True)
        for old in list(self.fleet.alive()):
            new = self.fleet.start()
            wait_for(f"{new.identity} ready", new.ready, 300, 0.5)
            held = self.held_by(old.identity)
            old.stop(signal.SIGTERM)
            self.timeline.terms.append((old.identity, old.stopped or time.time(), held))
            self.wait_spread(f"{old.identity}'s shards spread", 300, 0.5)

    def phases(self) -> list[Any]:
        return [(r.get("status") or {}).get("phase") for r in releasing_rollouts(self.plane)]


def run(options: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from canary_sandbox.controlplane import ControlPlane
    from canary_sandbox.k8s_assets import ensure_assets

    policy = workdir / "audit-policy.json"
    policy.write_text(json.dumps(AUDIT_POLICY))
    plane = ControlPlane(workdir=workdir / "plane", assets=ensure_assets(), audit_policy=policy)
    prom_port = scale.free_port()
    with contextlib.ExitStack() as cleanup:
        prometheus = scale.start(scale.__file__, "--serve-prometheus", str(prom_port))
        cleanup.callback(scale.stop, prometheus)
        plane.start()
        cleanup.callback(plane.stop)
        scale.wait_for_port(prom_port)
        plane.create_namespace(LEASE_NAMESPACE)
        fleet = Fleet(plane.kubeconfig, options.shards, workdir)
        cleanup.callback(fleet.stop_all)
        bench = Bench(plane, fleet, options, f"http://127.0.0.1:{prom_port}")
        holding = options.rollouts - options.releasing
        bench.populate(holding)
        for _ in range(3):
            fleet.start()
        bench.wait_spread("3 replicas holding their shares", 600, 2)
        wait_for("every holding Rollout checked once", lambda: all_checked(plane, holding), 900, 10)
        bench.start_releases(holding)
        bench.kill_one()
        bench.rolling_restart()
        (workdir / "timeline.json").write_text(json.dumps(bench.timeline.__dict__))
        with contextlib.suppress(AssertionError):  # judged all the same: the phases say which
            wait_for(
                "every release Succeeded", lambda: set(bench.phases()) == {"Succeeded"}, 1200, 5
            )
        phases = bench.phases()
        memory = [round(scale._cpu_and_rss(r.process.pid)[1]) for r in fleet.alive()]
        servers = {name: round(scale._cpu_and_rss(plane.pid(name) or 0)[1])
                   for name in ("kube-apiserver", "etcd")}  # fmt: skip
        fleet.stop_all()
        time.sleep(2)  # the audit log's last lines
        figures = judge(read_audit(plane.audit_log), bench.timeline, options, phases)
        return {**figures, "replicas' resident memory (MB)": memory, "servers (MB)": servers}


# ---------------------------------------------------------------- the judgement


@dataclass(frozen=True)
class Write:
    at: float  # the answer (stageTimestamp): the latest moment the write can have landed
    received: float  # requestReceivedTimestamp
    writer: str
    resource: str
    key: str
    body: dict[str, Any]


def read_audit(path: Path) -> list[Write]:
    """Successful writes by the replicas (user agent `canary-controller/... (<identity>)`)."""
    writes = []
    for line in path.read_text().splitlines():
        event = json.loads(line)
        agent, code = event.get("userAgent", ""), (event.get("responseStatus") or {}).get("code", 0)
        if event.get("stage") != "ResponseComplete" or not agent.startswith("canary-controller/"):
            continue
        if not 200 <= code < 300:
            continue
        ref = event["objectRef"]
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        name = ref.get("name") or ((event.get("requestObject") or {}).get("metadata") or {}).get(
            "name", ""
        )
        writes.append(
            Write(
                at=_seconds(event["stageTimestamp"]),
                received=_seconds(event["requestReceivedTimestamp"]),
                writer=agent.rsplit("(", 1)[-1].rstrip(")"),
                resource=resource,
                key=f"{ref.get('namespace')}/{name}",
                body=event.get("requestObject") or {},
            )
        )
    return sorted(writes, key=lambda w: w.at)


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class LeaseHistory:
    """Who held each shard when, from the successful Lease writes."""

    def __init__(self, writes: list[Write], shards: int) -> None:
        from canary.core.shards import shard_in

        self.changes: dict[int, list[tuple[float, str | None]]] = defaultdict(list)
        for write in writes:
            if write.resource != "leases":
                continue
            shard = shard_in(write.key.split("/", 1)[1], shards)
            if shard is not None:
                holder = (write.body.get("spec") or {}).get("holderIdentity") or None
                self.changes[shard].append((write.received, holder))
        for changes in self.changes.values():
            changes.sort(key=lambda change: change[0])
        self._moments = {shard: [m for m, _ in changes] for shard, changes in self.changes.items()}

    def holder(self, shard: int, at: float) -> str | None:
        """The holder after the last Lease write received before `at`."""
        index = bisect.bisect_right(self._moments.get(shard, []), at)
        return self.changes[shard][index - 1][1] if index else None

    def acquired(self, shard: int, holder: str, after: float, until: float) -> bool:
        """Whether `holder` wrote the shard's Lease as its holder in (after, until]."""
        return any(after < moment <= until and who == holder for moment, who in self.changes[shard])

    def taken(self, shard: int, after: float, by_other_than: str) -> float | None:
        """When a replica other than `by_other_than` first acquired `shard` after `after`."""
        for moment, holder in self.changes[shard]:
            if moment > after and holder not in (None, by_other_than):
                return moment
        return None


def judge(
    writes: list[Write], timeline: Timeline, options: argparse.Namespace, phases: list[Any]
) -> dict[str, Any]:
    from canary.core.shards import shard_of

    history = LeaseHistory(writes, options.shards)
    rollout_writes = [w for w in writes if w.resource != "leases"]
    foreign = [
        w
        for w in rollout_writes
        if history.holder(shard_of(w.key, options.shards), w.at) != w.writer
    ]
    interleaved = unexplained_writer_changes(rollout_writes, history, options.shards)

    kill_takeovers = [
        taken - timeline.kill_at
        for shard in timeline.killed_shards
        if (taken := history.taken(shard, timeline.kill_at, timeline.killed)) is not None
    ]
    term_takeovers = [
        taken - at
        for replica, at, shards in timeline.terms
        for shard in shards
        if (taken := history.taken(shard, at, replica)) is not None
    ]
    killed_keys = [
        k for k in timeline.releasing if shard_of(k, options.shards) in timeline.killed_shards
    ]
    resumed = []
    for key in killed_keys:
        after = [w.at for w in rollout_writes if w.key == key and w.at > timeline.kill_at]
        if after:
            resumed.append(after[0] - timeline.kill_at)
    skipped, repeated = step_faults(rollout_writes, timeline.releasing)
    return {
        "rollouts": options.rollouts,
        "releasing": options.releasing,
        "shards": options.shards,
        "writes judged": len(rollout_writes),
        "lease writes": len(writes) - len(rollout_writes),
        "SIGKILL: shards taken over": f"{len(kill_takeovers)} of {len(timeline.killed_shards)}",
        "SIGKILL: takeover p50 / p99 (s)": _p50_p99(kill_takeovers),
        "SIGKILL: its releases' next write p50 / p99 (s)": _p50_p99(resumed),
        "rolling restart: shards handed over": f"{len(term_takeovers)} of "
        f"{sum(len(s) for _, _, s in timeline.terms)}",
        "rolling restart: handover p50 / p99 (s)": _p50_p99(term_takeovers),
        "writes by a replica not holding the shard": len(foreign),
        "Rollouts whose writer changed without a Lease handover": len(interleaved),
        "steps skipped": skipped,
        "steps repeated": repeated,
        "releases Succeeded": f"{phases.count('Succeeded')} of {len(phases)}",
        "examples": {
            "foreign": [w.__dict__ | {"body": None} for w in foreign[:3]],
            "interleaved": interleaved[:3],
        },
    }


def unexplained_writer_changes(
    writes: list[Write], history: LeaseHistory, shards: int
) -> list[str]:
    """The Rollouts written by one replica and next by another that had not acquired the
    shard's Lease in between: two replicas reconciling it at once. (A shard may move back and
    forth between replicas; each move is a Lease acquisition.)"""
    from canary.core.shards import shard_of

    last: dict[str, Write] = {}
    found: set[str] = set()
    for write in writes:
        before = last.get(write.key)
        if before is not None and before.writer != write.writer:
            shard = shard_of(write.key, shards)
            if not history.acquired(shard, write.writer, before.received, write.at):
                found.add(write.key)
        last[write.key] = write
    return sorted(found)


def replayed_statuses(writes: list[Write], keys: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each Rollout's status after each of its status patches (JSON merge patches), in order."""
    from canary_sandbox.patch import merge_patch

    wanted = set(keys)
    replayed: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for write in writes:
        if write.resource == "rollouts/status" and write.key in wanted:
            before = replayed[write.key][-1] if replayed[write.key] else {}
            replayed[write.key].append(merge_patch(before, write.body.get("status") or {}))
    return replayed


def step_faults(writes: list[Write], releasing: list[str]) -> tuple[int, int]:
    """(skipped, repeated) steps over the releases, from their status replayed patch by patch."""
    skipped = repeated = 0
    begun: dict[str, list[tuple[int, str]]] = defaultdict(list)  # (step index, stepStartedAt)
    for key, statuses in replayed_statuses(writes, releasing).items():
        for status in statuses:
            if status.get("stage") != "split":
                continue
            step = (int(status.get("stepIndex") or 0), str(status.get("stepStartedAt")))
            if not begun[key] or begun[key][-1] != step:
                begun[key].append(step)
    for steps in begun.values():
        indexes = [index for index, _ in steps]
        skipped += sum(1 for a, b in itertools.pairwise(indexes) if b > a + 1)
        repeated += len(indexes) - len(set(indexes))
    return skipped, repeated


def judge_kept(workdir: Path, options: argparse.Namespace) -> dict[str, Any]:
    """The judgement of a run kept with --keep; each release's phase from its status patches."""
    timeline = Timeline(**json.loads((workdir / "timeline.json").read_text()))
    writes = read_audit(workdir / "plane" / "logs" / "audit.log")
    replayed = replayed_statuses(writes, timeline.releasing)
    phases = [(replayed[key] or [{}])[-1].get("phase") for key in timeline.releasing]
    return judge(writes, timeline, options, phases)


def _p50_p99(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{scale.percentile(values, 0.5):.1f} / {scale.percentile(values, 0.99):.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--small", action="store_true", help="600 Rollouts, 60 releasing, 12 shards"
    )
    parser.add_argument("--rollouts", type=int, default=None)
    parser.add_argument("--releasing", type=int, default=None)
    parser.add_argument("--shards", type=int, default=None)
    parser.add_argument("--keep", help="keep the control plane's files (the audit log) here")
    parser.add_argument("--judge", help="judge again the run kept in this directory (--keep)")
    options = parser.parse_args(argv)
    options.rollouts = options.rollouts or (600 if options.small else 10_000)
    options.releasing = options.releasing or (60 if options.small else 300)
    options.shards = options.shards or (12 if options.small else 30)
    options.interval, options.scenario = 10.0, "hold"
    if options.judge:
        print(json.dumps(judge_kept(Path(options.judge), options), indent=2))
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(options.keep) if options.keep else Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        figures = run(options, workdir)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
