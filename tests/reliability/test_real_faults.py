"""Leader election and faults of the REAL control plane, in the middle of a release.

Each test releases examples/ui v2 (in a namespace of its own, on a control plane of this module's
own: `own_plane`) with real kwok-backed Deployments, gates read by a real Prometheus from the
traffic simulator (routing as the real VirtualService says), and `canary controller
--leader-elect` processes. Mid-release:

- two controllers on one real `coordination.k8s.io` Lease: exactly one leads; the leader is
  SIGKILLed; the other takes over within the lease duration plus one retry period (measured
  from the Lease's own acquireTime) and writes nothing before it holds the Lease;
- kube-apiserver SIGKILLed and started again;
- etcd stopped for 20 s, then started again (two controllers: never two leaders at once);
- etcd compacted and kube-apiserver restarted, so that every watch of the controller is
  answered 410 Expired and its informers must list again.

In each, from every revision etcd stored (`EtcdRecorder`, past the apiserver, so no fault
blinds it), the release is the plan's: the VirtualService and DestinationRule go through
exactly the specs `canary plan` writes, in order, none skipped or repeated, and no other; the
Rollout's positions and its status history are those of the same walk; every analysed position
got its required passing checks; the release succeeds with v2 stable. The takeover time and how
long each fault held the release are printed (pytest -s).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from reliability_helpers import (
    StallingProxy,
    checks_by_position,
    position,
    wait_until_ready,
)
from support.binaries import require_binary
from support.controlplane import namespace_name
from support.polling import wait_until
from support.traffic import collapse

from canary.cli.offline import load_rollout
from canary.controller.runtime import LeaderElection
from canary.core.model import Rollout
from canary.core.path import required_checks
from canary.core.simulate import walk
from canary.core.spec import Stage
from canary.kube.client import KubeCluster
from canary.kube.events import parse_time
from canary.mesh.istio import plan_destination_rule, plan_virtual_service
from canary_sandbox.client import SandboxClient
from canary_sandbox.controlplane import ControlPlane
from canary_sandbox.prometheus import PrometheusProcess
from canary_sandbox.recorder import EtcdRecorder, Recorded, custom_resource_prefix
from canary_sandbox.stack import SERVICE, ControllerProcess, example, fast_rollout, install_example
from canary_sandbox.traffic import KubeRouting, TrafficSimulator

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]

Obj = dict[str, Any]
INTERVAL = 1.0  # the analysis interval, seconds
LEASE_NAME = "canary-controller"
_ELECTION = {f.name: f.default for f in dataclasses.fields(LeaderElection)}
LEASE_SECONDS = float(_ELECTION["lease_seconds"])  # what `canary controller` runs with
RETRY_SECONDS = float(_ELECTION["retry_seconds"])
RELEASE_TIMEOUT = 240.0  # a guard against hanging, never an assertion on speed
ETCD_DOWN_SECONDS = 20.0


# ---------------------------------------------------------------- the module's equipment


@pytest.fixture(scope="module")
def traffic() -> Iterator[tuple[TrafficSimulator, PrometheusProcess]]:
    """The traffic simulator (each test adds its namespace's `ui`, routed as the real
    VirtualService says) and a real Prometheus scraping it every second."""
    require_binary("prometheus")
    with contextlib.ExitStack() as stack:
        simulator = stack.enter_context(TrafficSimulator(seed=11))
        prometheus = stack.enter_context(
            PrometheusProcess(targets=[simulator.address], scrape_interval="1s")
        )
        yield simulator, prometheus


@dataclass
class RealRelease:
    """One test's release of examples/ui v2 on the module's control plane."""

    plane: ControlPlane
    namespace: str
    workdir: Path
    prometheus_url: str
    recorder: EtcdRecorder
    controllers: list[ControllerProcess] = field(default_factory=list)
    body: Obj = field(default_factory=dict)

    # ------------------------------------------------------------ the controllers

    def start_controller(self) -> ControllerProcess:
        controller = ControllerProcess(
            self.plane.kubeconfig,
            self.workdir / f"controller-{len(self.controllers)}.log",
            ["--leader-elect", "--lease-namespace", self.namespace, "--namespace", self.namespace],
        ).start()
        self.controllers.append(controller)
        wait_until_ready(controller)
        return controller

    def lease(self) -> Obj:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{LEASE_NAME}"
        try:
            return self.plane.request("GET", path)
        except (OSError, urllib.error.URLError):
            return {}

    def holder(self) -> str | None:
        holder = (self.lease().get("spec") or {}).get("holderIdentity")
        return str(holder) if holder else None

    # ------------------------------------------------------------ the release

    def release(self) -> None:
        body = fast_rollout(INTERVAL, self.prometheus_url)
        body["metadata"]["namespace"] = self.namespace
        body["spec"]["stages"]["split"]["interval"] = f"{2 * INTERVAL:g}s"
        self.body = body
        self.plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))

    def rollouts(self) -> list[Obj]:
        return self.recorder.versions("rollouts", SERVICE)

    def status(self) -> Obj:
        versions = self.rollouts()
        return dict(versions[-1].get("status") or {}) if versions else {}

    def wait_for_status(self, predicate: Callable[[Obj], bool], what: str) -> Obj:
        return self.wait_for(lambda: (s := self.status()) and predicate(s) and s, what)

    def wait_for(self, predicate: Callable[[], Any], what: str) -> Any:
        return wait_until(predicate, what, RELEASE_TIMEOUT, every=0.1, describe=self.describe)

    def wait_for_success(self) -> Obj:
        status = self.wait_for_status(
            lambda s: (
                s.get("canaryVersion") == "v2"
                and s.get("phase") in ("Succeeded", "RolledBack", "Aborted")
            ),
            "the release to end",
        )
        assert status["phase"] == "Succeeded", (status.get("message"), self.describe())
        self.wait_for(self.recorder.caught_up, "the recorder to catch up")
        return status

    def describe(self) -> str:
        status = {k: v for k, v in self.status().items() if k not in ("history", "conditions")}
        parts = [f"Rollout status: {status}"]
        for controller in self.controllers:
            tail = "\n".join(controller.logs().splitlines()[-25:])
            parts.append(f"--- {controller.log_path.name} (pid {controller.pid}):\n{tail}")
        return "\n".join(parts)

    def writes_after(self, moment: float) -> list[Recorded]:
        """Revisions of the Rollout, VirtualService and DestinationRule stored after `moment`
        (time.monotonic())."""
        return [r for r in self.recorder.recorded() if r.at > moment]

    # ------------------------------------------------------------ the plan

    def assert_as_planned(self) -> None:
        """Every revision of the release is a planned one, in the plan's order, none left out,
        repeated or cut short."""
        rollout = load_rollout(self._write("rollout.yaml", self.body))
        vs, dr = example("virtualservice"), example("destinationrule")
        ticks = list(walk(rollout, datetime(2026, 1, 1, tzinfo=UTC), "v1"))
        planned_vs, planned_dr = [vs["spec"]], [dr["spec"]]
        for tick in ticks:
            if tick.decision.traffic is None:
                continue
            vs = plan_virtual_service(vs, SERVICE, rollout.spec, tick.decision.traffic).obj
            dr = plan_destination_rule(dr, SERVICE, rollout.spec, tick.decision.traffic).obj
            planned_vs.append(vs["spec"])
            planned_dr.append(dr["spec"])
        planned_vs, planned_dr = collapse(planned_vs), collapse(planned_dr)
        written_vs = [v["spec"] for v in self.recorder.versions("virtualservices", SERVICE)]
        written_dr = [v["spec"] for v in self.recorder.versions("destinationrules", SERVICE)]
        # the recorder started once examples/ui was applied (the plan's first state); a write
        # that changes only metadata (a claim annotation) leaves the spec where it was
        written_vs, written_dr = [planned_vs[0], *written_vs], [planned_dr[0], *written_dr]
        assert collapse(written_vs) == planned_vs, _mismatch(written_vs, planned_vs)
        assert collapse(written_dr) == planned_dr, _mismatch(written_dr, planned_dr)

        planned_positions = collapse([_position(t.decision.status.wire()) for t in ticks])
        written = [obj.get("status") or {} for obj in self.rollouts()]
        positions = [_position(s) for s in written if s]
        assert collapse(positions) == planned_positions, (collapse(positions), planned_positions)
        final_history = [_history_entry(h) for h in written[-1]["history"]]
        planned_history = [_history_entry(h) for h in ticks[-1].decision.status.wire()["history"]]
        assert final_history == planned_history

        spec = Rollout.model_validate(self.body).spec
        for (stage, step), verdicts in checks_by_position(self.rollouts()).items():
            if stage in ("mirror", "headerCanary", "split"):
                needed = required_checks(spec, Stage(stage))
                assert verdicts.count("pass") >= needed, (stage, step, verdicts)
        analysed = {p[1:3] for p in positions if p[1] in ("mirror", "headerCanary", "split")}
        assert analysed <= set(checks_by_position(self.rollouts())), "a position got no check"
        assert written[-1]["stableVersion"] == "v2"

    def _write(self, name: str, body: Obj) -> str:
        path = self.workdir / name
        path.write_text(yaml.safe_dump(body))
        return str(path)

    def close(self) -> None:
        for controller in self.controllers:
            controller.stop()
        self.recorder.stop()


def _position(status: Obj) -> tuple[Any, ...]:
    return (*position(status), int(status.get("canaryWeight", 0)))


def _history_entry(entry: Obj) -> tuple[Any, ...]:
    return entry.get("phase"), entry.get("stage"), entry.get("step"), entry.get("canaryWeight", 0)


def _mismatch(written: list[Obj], planned: list[Obj]) -> str:
    unplanned = [spec for spec in written if spec not in planned]
    return f"{len(collapse(written))} written, {len(planned)} planned; unplanned: {unplanned}"


@pytest.fixture
def release(
    own_plane: ControlPlane,
    traffic: tuple[TrafficSimulator, PrometheusProcess],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[RealRelease]:
    simulator, prometheus = traffic
    namespace = namespace_name(request.node.name)
    install_example(SandboxClient.from_kubeconfig(own_plane.kubeconfig), namespace)
    routing = KubeRouting.from_kubeconfig(own_plane.kubeconfig, namespace, SERVICE).start()
    simulator.add_service(
        SERVICE, namespace, versions=("v1", "v2"), rps=40, header_share=0.2, routing=routing
    )
    prefixes = [
        custom_resource_prefix("networking.istio.io", "virtualservices", namespace),
        custom_resource_prefix("networking.istio.io", "destinationrules", namespace),
        custom_resource_prefix("canary.dev", "rollouts", namespace),
    ]
    recorder = EtcdRecorder(own_plane.etcd_url, prefixes).start()
    environment = RealRelease(own_plane, namespace, tmp_path, prometheus.url, recorder)
    try:
        yield environment
    finally:
        environment.close()
        routing.stop()
        simulator.set_rate(namespace, SERVICE, 0.0)
        own_plane.delete_namespace(namespace)


def at_split_25(status: Obj) -> bool:
    return status.get("stage") == "split" and int(status.get("canaryWeight", 0)) == 25


def held(release: RealRelease, began: float, back: float) -> str:
    """How long the fault that lasted from `began` to `back` (time.monotonic()) held the
    release: from the last Rollout write before the fault was over to the first one after."""
    during = (began + back) / 2  # a moment when nothing can be written
    writes = [r.at for r in release.recorder.recorded() if r.kind[1] == "rollouts"]
    before = max(at for at in writes if at < during)
    after = min(at for at in writes if at > during)
    return (
        f"release held {after - before:.2f} s (the fault handles took {back - began:.2f} s, "
        f"readiness waits included; first write {after - began:.2f} s after the fault began, "
        f"{after - back:+.2f} s from the handle's return)"
    )


def leader_events(controller: ControllerProcess) -> list[tuple[datetime, str]]:
    """(moment, event) of each leadership change in the controller's log."""
    changes = []
    for line in controller.logs().splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("event") in ("became leader", "lost the leader lease; writing stops"):
            moment = parse_time(record["timestamp"])
            assert moment is not None
            changes.append((moment, str(record["event"])))
    return changes


def identity_of(controller: ControllerProcess) -> str | None:
    for line in controller.logs().splitlines():
        if line.startswith("{") and '"became leader"' in line:
            return str(json.loads(line)["identity"])
    return None


def leading_spans(
    controller: ControllerProcess, until: datetime
) -> list[tuple[datetime, datetime]]:
    spans, since = [], None
    for moment, event in leader_events(controller):
        if event == "became leader" and since is None:
            since = moment
        elif event != "became leader" and since is not None:
            spans.append((since, moment))
            since = None
    if since is not None:
        spans.append((since, until))
    return spans


def assert_never_two_leaders(controllers: list[ControllerProcess]) -> None:
    now = datetime.now(UTC)
    spans = [(c.pid, s) for c in controllers for s in leading_spans(c, now)]
    for pid, (start, end) in spans:
        for other, (start2, end2) in spans:
            if other != pid:
                assert end <= start2 or end2 <= start, f"two leaders at once: {spans}"


# ---------------------------------------------------------------- leader election


def test_the_standby_takes_over_a_killed_leader_within_the_lease(release: RealRelease) -> None:
    first, second = release.start_controller(), release.start_controller()
    release.wait_for(lambda: release.holder() is not None, "a leader")
    leaders = [c for c in (first, second) if identity_of(c) is not None]
    assert len(leaders) == 1, [c.logs()[-2000:] for c in (first, second)]
    [leader] = leaders
    [standby] = [c for c in (first, second) if c is not leader]
    assert release.holder() == identity_of(leader)

    release.release()
    release.wait_for_status(at_split_25, "the split at 25 %")
    assert leader.metric("canary_leader") == 1
    assert standby.metric("canary_leader") == 0
    killed_at, killed_mono = datetime.now(UTC), time.monotonic()
    leader.kill()
    release.wait_for(lambda: identity_of(standby) is not None, "the standby to lead")
    lease = release.lease()["spec"]
    acquired = parse_time(lease["acquireTime"])
    assert acquired is not None
    takeover = (acquired - killed_at).total_seconds()
    release.wait_for_success()

    takeover_mono = killed_mono + takeover
    print(
        f"\nleader takeover: {takeover:.2f} s after SIGKILL (lease {LEASE_SECONDS:g} s, "
        f"retry {RETRY_SECONDS:g} s); {held(release, killed_mono, takeover_mono)}"
    )
    assert lease["holderIdentity"] == identity_of(standby)
    assert int(lease["leaseTransitions"]) == 1
    assert takeover <= LEASE_SECONDS + RETRY_SECONDS
    # nothing is written between the kill (what the killed one had sent, if anything, has landed
    # by then) and the standby holding the Lease
    assert [r for r in release.writes_after(killed_mono + 0.5) if r.at < takeover_mono] == []
    release.assert_as_planned()


def test_a_leader_whose_connection_hangs_stops_writing_before_another_leads(
    own_plane: ControlPlane, tmp_path: Path
) -> None:
    """The leader's connection goes dead (no RST, no FIN: a partition): its lease renewal hangs
    in the client's timeouts and retries for far longer than the Lease lasts. It must stop
    writing before the Lease can expire for the other candidate, which then takes over; at no
    moment may both write. (Before the fix it went on writing until the hanging call gave up,
    ~40 s, while the other led from ~15 s.) And it must say so, in its log, before the other
    leads: the renewal is bounded by the renew deadline, not left to hang (until that fix, it
    logged "lost the leader lease" only when the call returned, and an etcd outage made two
    leaders appear in the logs at once though only one wrote)."""
    namespace = namespace_name("hanging-leader")
    own_plane.create_namespace(namespace)
    proxy = StallingProxy(("127.0.0.1", own_plane.ports.apiserver)).start()
    kubeconfig = own_plane.write_kubeconfig(tmp_path / "through-proxy")
    config = yaml.safe_load(kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    kubeconfig.write_text(yaml.safe_dump(config))
    stop = threading.Event()

    def candidate(path: Path) -> LeaderElection:
        election = LeaderElection(KubeCluster.from_kubeconfig(str(path), qps=0), namespace)
        threading.Thread(target=election.run, args=(stop,), daemon=True).start()
        return election

    try:
        first = candidate(kubeconfig)
        wait_until(first.is_leading, "the first candidate to lead", 60, every=0.05)
        second = candidate(own_plane.kubeconfig)
        stalled = time.monotonic()
        proxy.stall()
        stopped_at = said_so_at = None
        while not second.is_leading():
            if stopped_at is None and not first.is_leading():
                stopped_at = time.monotonic()
            if said_so_at is None and not first.leading.is_set():
                said_so_at = time.monotonic()  # and logged "lost the leader lease"
            assert time.monotonic() - stalled < 3 * LEASE_SECONDS, "the second never led"
            time.sleep(0.02)
        took_over = time.monotonic()
        for _ in range(100):  # and the first stays out while its call still hangs
            assert not first.is_leading()
            time.sleep(0.05)
    finally:
        stop.set()
        proxy.close()
        own_plane.delete_namespace(namespace)

    assert stopped_at is not None
    assert said_so_at is not None, "the first still says it leads: its renewal is unbounded"
    print(
        f"\nleader's connection dead: it stopped writing {stopped_at - stalled:.2f} s after, "
        f"the other led {took_over - stalled:.2f} s after (lease {LEASE_SECONDS:g} s)"
    )
    assert stopped_at <= said_so_at < took_over


# ---------------------------------------------------------------- faults of the real thing


def test_kube_apiserver_killed_and_restarted_mid_release(release: RealRelease) -> None:
    release.start_controller()
    release.release()
    release.wait_for_status(at_split_25, "the split at 25 %")
    began = time.monotonic()
    release.plane.kill_apiserver()
    time.sleep(3.0)  # down for a moment: requests are refused meanwhile
    release.plane.start_apiserver()
    back = time.monotonic()
    release.wait_for_success()

    print(f"\nkube-apiserver SIGKILLed and started again: {held(release, began, back)}")
    release.assert_as_planned()


def test_etcd_stopped_for_20_seconds_mid_release(release: RealRelease) -> None:
    controllers = [release.start_controller(), release.start_controller()]
    release.release()
    release.wait_for_status(at_split_25, "the split at 25 %")
    began = time.monotonic()
    release.plane.stop_etcd()
    time.sleep(ETCD_DOWN_SECONDS)
    release.plane.start_etcd()
    back = time.monotonic()
    release.wait_for_success()

    print(f"\netcd stopped {ETCD_DOWN_SECONDS:g} s and started: {held(release, began, back)}")
    release.assert_as_planned()
    assert_never_two_leaders(controllers)


def test_watches_expired_by_a_compaction_make_the_informers_list_again(
    release: RealRelease,
) -> None:
    controller = release.start_controller()
    release.release()
    release.wait_for_status(at_split_25, "the split at 25 %")
    lists_before = {
        resource: controller.metric(
            "canary_kube_api_requests_total", verb="list", resource=resource
        )
        for resource in _LISTED
    }
    release.wait_for(release.recorder.caught_up, "the recorder to catch up")
    began = time.monotonic()
    release.plane.compact_etcd()
    release.plane.restart_apiserver()  # its watch cache starts from the compacted history
    back = time.monotonic()
    release.wait_for_success()
    lists_after = {
        resource: controller.metric(
            "canary_kube_api_requests_total", verb="list", resource=resource
        )
        for resource in _LISTED
    }

    print(f"\netcd compacted, kube-apiserver restarted: {held(release, began, back)}")
    assert all(lists_after[r] > lists_before[r] for r in _LISTED), (lists_before, lists_after)
    release.assert_as_planned()


# what the controller watches; a stream lists again only after its watch was answered 410 (or
# failed for good, e.g. 403): a dropped or refused watch is reopened from its resourceVersion
_LISTED = ("rollouts", "virtualservices", "destinationrules", "deployments")
