"""One reconcile of one Rollout: observe, decide (pure core), write.

Order of writes, and why a crash between any two of them is harmless:

1. **Converge**: the mesh is brought to what the *stored* status says. Usually nothing is
   written. If something is (the controller died between steps 3 and 4 last time, or someone
   edited a managed route), the current step starts over, because its checks so far measured
   other traffic.
2. **Decide**: requests, gates (only when an analysis is due) and `advance`.
3. **Status** is written first, through the status subresource. It is the intent and the only
   state: a controller that dies right after it finds, in step 1, the mesh one position behind
   and brings it forward. Nothing is skipped (the step's checks restart) and nothing moves back.
4. **Traffic**: DestinationRule, then VirtualService (a subset always selects the right pods
   before a route sends traffic to it). Each is a read-modify-write with resourceVersion,
   retried from a fresh read on 409, and skipped when the planner says nothing changes.
5. **Events** last: losing one to a crash loses a notice, never a step. Notifications and
   post-release webhooks are only queued here (a receiver never slows a reconcile), after the
   status is stored, so a decision that was not stored is not announced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pydantic import ValidationError

from canary.core.errors import describe_validation_error
from canary.core.machine import (
    Decision,
    Event,
    Observed,
    advance,
    analysis_due,
    invalid,
    invalid_status,
    repeats_stored_check,
    traffic_restored,
    webhooks_due,
)
from canary.core.model import KIND, Phase, Rollout, RolloutStatus, Stage
from canary.core.notices import notices_of
from canary.core.traffic import Traffic, traffic_for
from canary.core.webhooks import post_release_due
from canary.kube.port import Cluster, KubeError, NotFoundError, Obj, WorkloadState
from canary.mesh.router import MeshError, MeshRouter
from canary.metrics.port import MetricsSource
from canary.notify.port import NoNotifications, NotificationSink
from canary.webhooks.port import NoWebhooks, WebhookCaller

FINALIZER = "canary.dev/finalizer"

log = structlog.get_logger("canary.reconcile")


@dataclass(frozen=True)
class Outcome:
    requeue_after: timedelta | None
    rollout: Obj | None  # the object as last written, for the cache


@dataclass
class Reconciler:
    cluster: Cluster
    router: MeshRouter
    metrics: MetricsSource
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    may_write: Callable[[], bool] = lambda: True
    on_decision: Callable[[Rollout, Decision], None] = lambda rollout, decision: None
    webhooks: WebhookCaller = field(default_factory=NoWebhooks)
    notifier: NotificationSink = field(default_factory=NoNotifications)
    store_every_check: bool = False  # the baseline of benchmarks/scale.py

    def reconcile(self, obj: Obj) -> Outcome:
        meta = obj.get("metadata", {})
        bound = log.bind(rollout=meta.get("name"), namespace=meta.get("namespace"))
        try:
            rollout = Rollout.model_validate(obj)
        except ValidationError as error:
            return self._unreadable(obj, error)
        bound = bound.bind(stage=rollout.status.stage, step=rollout.status.step_index)
        if rollout.metadata.deletion_timestamp is not None:
            return self._finalize(rollout)
        try:
            return self._reconcile(rollout, bound)
        except (MeshError, NotFoundError) as error:
            return self._write(rollout, invalid(rollout, str(error), self.clock()), None)

    # ------------------------------------------------------------ the steps

    def _reconcile(self, rollout: Rollout, bound: Any) -> Outcome:
        if not self.may_write():
            return Outcome(None, None)
        rollout = self._ensure_finalizer(rollout)
        destination_rule = self.cluster.get_destination_rule(
            rollout.metadata.namespace, rollout.spec.destination_rule.name
        )
        virtual_service = self.cluster.get_virtual_service(
            rollout.metadata.namespace, rollout.spec.virtual_service.name
        )
        self.router.check(virtual_service, destination_rule, rollout.metadata.name, rollout.spec)
        rollout = self._converge(rollout)
        now = self.clock()
        canary = self._canary_state(rollout)
        observed = Observed(
            canary_ready=canary.ready,
            stable_version=self._stable_version(rollout, destination_rule),
            gates=self.metrics.evaluate(rollout) if analysis_due(rollout, now) else None,
            workload=canary.message,
            webhooks=self.webhooks.call(rollout, webhooks_due(rollout, now, canary.ready)),
        )
        decision = advance(rollout, observed, now)
        bound.debug("decided", phase=decision.status.phase, weight=decision.status.canary_weight)
        return self._write(rollout, decision, decision.traffic)

    def _converge(self, rollout: Rollout) -> Rollout:
        traffic = traffic_for(rollout.spec, rollout.status)
        if traffic is None or not self._apply_traffic(rollout, traffic):
            return rollout
        decision = traffic_restored(rollout, self.clock(), self._mesh_names(rollout))
        written, _ = self._write_status(rollout, decision.status)
        self._record(rollout, decision.events)
        return written

    def _write(self, rollout: Rollout, decision: Decision, traffic: Traffic | None) -> Outcome:
        self.on_decision(rollout, decision)
        written, response = self._write_status(rollout, decision.status)
        if traffic is not None and traffic != traffic_for(rollout.spec, rollout.status):
            self._apply_traffic(written, traffic)  # else `_converge` has just made it so
        self._record(rollout, decision.events)
        self._announce(rollout, decision)
        return Outcome(decision.requeue_after, response)

    # ------------------------------------------------------------ writes

    def _write_status(self, rollout: Rollout, status: RolloutStatus) -> tuple[Rollout, Obj | None]:
        """Patch the status if it changed (a check that repeats the stored one is not a
        change); the Rollout as now stored, and the API's answer."""
        if not self.store_every_check and repeats_stored_check(rollout.status, status):
            return rollout, None
        old, new = rollout.status.wire(), status.wire()
        if old == new or not self.may_write():
            return rollout.model_copy(update={"status": status}), None
        response = self.cluster.patch_rollout_status(
            rollout.metadata.namespace, rollout.metadata.name, status_patch(old, new)
        )
        meta = rollout.metadata.model_copy(
            update={"resource_version": response.get("metadata", {}).get("resourceVersion")}
        )
        return rollout.model_copy(update={"status": status, "metadata": meta}), response

    def _apply_traffic(self, rollout: Rollout, traffic: Traffic) -> bool:
        """Write the DestinationRule then the VirtualService if they differ; True if written."""
        if not self.may_write():
            return False
        namespace, spec, name = rollout.metadata.namespace, rollout.spec, rollout.metadata.name
        dr = self.cluster.update_destination_rule(
            namespace,
            spec.destination_rule.name,
            lambda obj: _if_changed(self.router.plan_destination_rule(obj, name, spec, traffic)),
        )
        vs = self.cluster.update_virtual_service(
            namespace,
            spec.virtual_service.name,
            lambda obj: _if_changed(self.router.plan_virtual_service(obj, name, spec, traffic)),
        )
        return dr.written or vs.written

    def _record(self, rollout: Rollout, events: tuple[Event, ...]) -> None:
        bound = log.bind(rollout=rollout.metadata.name, namespace=rollout.metadata.namespace)
        for event in events:
            bound.info(event.message, reason=event.reason, type=event.type)
            if not self.may_write():
                continue
            try:
                self.cluster.record_event(
                    _involved(rollout), event.type, event.reason, event.message
                )
            except KubeError as error:
                bound.warning("event not recorded", error=str(error))

    def _announce(self, rollout: Rollout, decision: Decision) -> None:
        """Queue notifications and post-release webhooks; neither waits for a receiver."""
        if not self.may_write():
            return
        self.notifier.notify(rollout, notices_of(rollout, decision))
        if post_release_due(rollout.status, decision.status):
            self.webhooks.post_release(rollout, decision.status)

    def _ensure_finalizer(self, rollout: Rollout) -> Rollout:
        if FINALIZER in rollout.metadata.finalizers:
            return rollout
        finalizers = [*rollout.metadata.finalizers, FINALIZER]
        self.cluster.patch_rollout_metadata(
            rollout.metadata.namespace, rollout.metadata.name, {"finalizers": finalizers}
        )
        meta = rollout.metadata.model_copy(update={"finalizers": finalizers})
        return rollout.model_copy(update={"metadata": meta})

    def _finalize(self, rollout: Rollout) -> Outcome:
        """A deleted Rollout hands its route back: stable 100, managed routes removed."""
        if FINALIZER not in rollout.metadata.finalizers or not self.may_write():
            return Outcome(None, None)
        namespace, spec, name = rollout.metadata.namespace, rollout.spec, rollout.metadata.name
        stable = rollout.status.stable_version
        try:
            if stable is not None:
                self.cluster.update_destination_rule(
                    namespace,
                    spec.destination_rule.name,
                    lambda obj: _if_changed(
                        self.router.release_destination_rule(obj, name, spec, stable)
                    ),
                )
                self.cluster.update_virtual_service(
                    namespace,
                    spec.virtual_service.name,
                    lambda obj: _if_changed(
                        self.router.release_virtual_service(obj, name, spec, stable)
                    ),
                )
        except (NotFoundError, MeshError) as error:
            log.warning("released without touching the mesh", rollout=name, error=str(error))
        log.info("rollout deleted; route handed back to stable", rollout=name, namespace=namespace)
        finalizers = [f for f in rollout.metadata.finalizers if f != FINALIZER]
        self.cluster.patch_rollout_metadata(namespace, name, {"finalizers": finalizers})
        return Outcome(None, None)

    def _unreadable(self, obj: Obj, error: ValidationError) -> Outcome:
        meta = obj.get("metadata", {})
        namespace, name = meta.get("namespace", "default"), meta.get("name", "?")
        message = f"{KIND} {namespace}/{name} is invalid: " + "; ".join(
            describe_validation_error(error)
        )
        try:
            status = RolloutStatus.model_validate(obj.get("status") or {})
        except ValidationError:
            status = RolloutStatus()
        decision = invalid_status(status, message, self.clock(), meta.get("generation"))
        if decision.status.wire() != status.wire() and self.may_write():
            self.cluster.patch_rollout_status(
                namespace, name, status_patch(status.wire(), decision.status.wire())
            )
            for event in decision.events:
                log.warning(event.message, rollout=name, namespace=namespace, reason=event.reason)
                self.cluster.record_event(obj, event.type, event.reason, event.message)
        return Outcome(None, None)

    # ------------------------------------------------------------ observations

    def _canary_state(self, rollout: Rollout) -> WorkloadState:
        ref = rollout.spec.canary.workload_ref
        waiting = rollout.status.stage in (None, Stage.WAITING)
        if ref is None or not waiting or rollout.status.phase in (Phase.SUCCEEDED,):
            return WorkloadState(exists=True, ready=True, message="the canary workload")
        return self.cluster.workload_state(rollout.metadata.namespace, ref.kind, ref.name)

    def _stable_version(self, rollout: Rollout, destination_rule: Obj) -> str | None:
        for subset in destination_rule.get("spec", {}).get("subsets") or []:
            if subset.get("name") == rollout.spec.stable.subset:
                version = (subset.get("labels") or {}).get(rollout.spec.version_label)
                return str(version) if version is not None else None
        return None

    def _mesh_names(self, rollout: Rollout) -> str:
        ns = rollout.metadata.namespace
        return (
            f"VirtualService {ns}/{rollout.spec.virtual_service.name} or "
            f"DestinationRule {ns}/{rollout.spec.destination_rule.name}"
        )


def _if_changed(planned: Any) -> Obj | None:
    return planned.obj if planned.changed else None


def _involved(rollout: Rollout) -> Obj:
    return {
        "apiVersion": rollout.api_version,
        "kind": rollout.kind,
        "metadata": {
            "name": rollout.metadata.name,
            "namespace": rollout.metadata.namespace,
            "uid": rollout.metadata.uid,
            "resourceVersion": rollout.metadata.resource_version,
        },
    }


def status_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A merge patch that stores the whole of `new`: every field, default values included (a
    diff against the parsed status would skip defaults the server never saw), and null for
    each field `new` no longer has. Nested objects in a status are always written whole."""
    return {**{key: None for key in old if key not in new}, **new}
