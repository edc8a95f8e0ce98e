"""One reconcile of one Rollout: observe, decide (pure core), plan, write.

Order of work, and why a crash between any two writes is harmless:

1. **Converge**: the mesh is brought to what the *stored* status says. Usually nothing is
   written. If something is (the controller died between steps 4 and 5 last time, or someone
   edited a managed route), the current step starts over, because its checks so far measured
   other traffic.
2. **Decide**: requests, gates (only when an analysis is due), the canary's readiness (read
   whenever a release may start or its traffic may go up) and `advance`.
3. **Plan** every write of the decision on the objects as they are, before anything is written:
   a Rollout whose decision cannot be planned (a route gone, a name too long for a claim) is
   marked Invalid from the stored status, and nothing else is written.
4. **Status** is written first, through the status subresource. It is the intent and the only
   state: a controller that dies right after it finds, in step 1, the mesh one position behind
   and brings it forward. Nothing is skipped (the step's checks restart) and nothing moves back.
5. **Traffic**: the DestinationRule and VirtualService writes in the order of
   `core.traffic.write_plan` (the subset before the route when traffic goes up, the route
   before the subset when it goes down or the subset is re-pointed), each a read-modify-write
   with resourceVersion, retried from a fresh read on 409, skipped when nothing changes. After
   the write that moved the stable subset, the status records when (the settle starts then).
6. **Events** last: losing one to a crash loses a notice, never a step. Notifications and
   post-release webhooks are only queued here (a receiver never slows a reconcile), after the
   status is stored, so a decision that was not stored is not announced.

A spec that cannot be used (invalid, or naming objects that are not there) never strands a
running release: the reconcile runs again on `status.lastValidSpec`, held (checks continue and
still roll back, requests are answered, nothing advances). Only when that fails too is the
Rollout Invalid, and even then its requests are answered (an abort is carried out as soon as
the mesh can be written).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pydantic import ValidationError

from canary.controller.slots import NOT_NEEDED, ReleaseSlots, SlotAnswer
from canary.core.errors import describe_validation_error
from canary.core.machine import (
    Decision,
    Event,
    Observed,
    advance,
    invalid,
    invalid_status,
    subset_moved,
    traffic_restored,
)
from canary.core.model import KIND, ObjectMeta, Rollout
from canary.core.notices import notices_of
from canary.core.objects import Obj, resource_version
from canary.core.path import analysis_due, repeats_stored_check, webhooks_due
from canary.core.requests import pending_request_in
from canary.core.spec import RolloutSpec
from canary.core.status import RUNNING_PHASES, RolloutStatus
from canary.core.traffic import MeshWrite, Traffic, stable_only, traffic_for, write_plan
from canary.core.webhooks import post_release_due
from canary.kube.port import Cluster, KubeError, Mutation, NotFoundError, WorkloadState
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


@dataclass(frozen=True)
class _Mesh:
    """The Rollout's VirtualService and DestinationRule as last read or written."""

    virtual_service: Obj
    destination_rule: Obj


@dataclass(frozen=True)
class _Plan:
    """The writes that carry a traffic, and the objects they were planned on."""

    writes: tuple[MeshWrite, ...]
    mesh: _Mesh


@dataclass(frozen=True)
class _MeshInputs:
    """All that checking a Rollout's mesh, or planning its traffic there, depends on besides the
    traffic (the router is pure): equal inputs, equal answer."""

    virtual_service: str  # resourceVersion
    destination_rule: str  # resourceVersion
    name: str
    spec: RolloutSpec

    @classmethod
    def of(cls, rollout: Rollout, mesh: _Mesh) -> _MeshInputs | None:
        """None for objects without a resourceVersion (nothing then tells two of them apart)."""
        vs, dr = resource_version(mesh.virtual_service), resource_version(mesh.destination_rule)
        return cls(vs, dr, rollout.metadata.name, rollout.spec) if vs and dr else None


class FencedError(KubeError):
    """This replica stopped being sure of its Lease during the reconcile: what it had not yet
    written is not written (the Rollout is reconciled again, by its holder)."""


class _CannotSteerError(Exception):
    """A user-caused problem found after `rollout` was written (its latest stored form)."""

    def __init__(self, message: str, rollout: Rollout) -> None:
        super().__init__(message)
        self.rollout = rollout


@dataclass
class Reconciler:
    cluster: Cluster
    router: MeshRouter
    metrics: MetricsSource
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    may_write: Callable[[str], bool] = lambda key: True  # may this replica write for `key`
    on_decision: Callable[[Rollout, Decision], None] = lambda rollout, decision: None
    webhooks: WebhookCaller = field(default_factory=NoWebhooks)
    notifier: NotificationSink = field(default_factory=NoNotifications)
    store_every_check: bool = False  # the baseline of benchmarks/scale.py
    slots: ReleaseSlots | None = None  # --max-concurrent-releases; None: no cap
    # per Rollout, the mesh it last found sound, and the mesh and traffic of its last plan that
    # needed no write: a tick that finds them again checks and plans nothing (most ticks do;
    # checking and planning were half of their CPU)
    _checked: dict[str, _MeshInputs] = field(default_factory=dict, init=False, repr=False)
    _settled: dict[str, tuple[_MeshInputs, Traffic]] = field(
        default_factory=dict, init=False, repr=False
    )

    def reconcile(self, obj: Obj) -> Outcome:
        meta = obj.get("metadata", {})
        bound = log.bind(rollout=meta.get("name"), namespace=meta.get("namespace"))
        try:
            rollout = Rollout.model_validate(obj)
        except ValidationError as error:
            return self._unreadable(obj, error, bound)
        bound = bound.bind(stage=rollout.status.stage, step=rollout.status.step_index)
        if rollout.metadata.deletion_timestamp is not None:
            return self._finalize(rollout)
        try:
            return self._reconcile(rollout, bound)
        except (MeshError, NotFoundError) as error:
            return self._held(rollout, str(error), bound)
        except _CannotSteerError as error:  # the decision's traffic, not the current one
            return self._held(error.rollout, str(error), bound)

    # ------------------------------------------------------------ the steps

    def _reconcile(
        self,
        rollout: Rollout,
        bound: Any,
        spec_problem: str | None = None,
        steered: bool = True,
    ) -> Outcome:
        """One reconcile; `steered` False (a held release whose mesh fails its checks): no
        check and no converge, only the decision's own traffic is planned (a rollback)."""
        if not self.may_write(rollout.key):
            return Outcome(None, None)
        rollout = self._ensure_finalizer(rollout)
        mesh = self._read_mesh(rollout)
        if steered:
            self._check(rollout, mesh)
            rollout, mesh = self._converge(rollout, mesh)
        now = self.clock()
        canary = self._canary_state(rollout, mesh)
        live = self._live_version(rollout, mesh)
        slot = self._release_slot(rollout, canary, live, spec_problem, now)
        try:
            observed = Observed(
                canary_ready=canary.ready,
                stable_version=live,
                gates=self.metrics.evaluate(rollout) if analysis_due(rollout, now) else None,
                workload=canary.message,
                # a release waiting for a slot calls none of the webhooks before its first stage
                webhooks=self.webhooks.call(rollout, webhooks_due(rollout, now, canary.ready))
                if slot.granted
                else {},
                spec_problem=spec_problem,
                release_slot=slot.granted,
                running_releases=slot.running,
                max_releases=slot.limit,
            )
            decision = advance(rollout, observed, now)
            bound.debug(
                "decided", phase=decision.status.phase, weight=decision.status.canary_weight
            )
            try:
                plan = self._plan(rollout, mesh, decision.traffic)
            except MeshError as error:
                raise _CannotSteerError(str(error), rollout) from error
            return self._write(rollout, decision, plan)
        finally:
            if slot.claimed and self.slots is not None:
                self.slots.unclaim(rollout.key)

    def _release_slot(
        self,
        rollout: Rollout,
        canary: WorkloadState,
        live: str,
        spec_problem: str | None,
        now: datetime,
    ) -> SlotAnswer:
        """Whether a release that would begin in this reconcile may (--max-concurrent-releases).
        The machine says whether it would: `advance` without a slot and without the gates and
        webhooks, which matter only after it asks (`Decision.slot_requested`). Only then is a
        slot claimed, so a Rollout that begins nothing never takes one, even for a moment."""
        if self.slots is None or rollout.status.holds_release_slot:
            return NOT_NEEDED
        without = Observed(
            canary_ready=canary.ready,
            stable_version=live,
            workload=canary.message,
            spec_problem=spec_problem,
            release_slot=False,
        )
        if not advance(rollout, without, now).slot_requested:
            self.slots.not_waiting(rollout.key)
            return NOT_NEEDED
        return self.slots.claim(rollout.key, rollout.status.waiting_for_slot_since)

    def _held(self, rollout: Rollout, problem: str, bound: Any) -> Outcome:
        """The spec (or the mesh it names) cannot be used. A running release goes on, held:
        checks continue and can still roll it back or abort it, nothing advances. First on its
        last valid spec (steered as usual); else on its own spec without converging the mesh,
        which then carries only a rollback or an abort. Anything else, or a held release whose
        mesh cannot even be read, is Invalid."""
        if rollout.status.phase in RUNNING_PHASES:
            last = rollout.status.last_valid_spec
            attempts = [(last, True)] if last is not None and last != rollout.spec else []
            for spec, steered in [*attempts, (rollout.spec, False)]:
                try:
                    held = rollout.model_copy(update={"spec": spec})
                    return self._reconcile(held, bound, spec_problem=problem, steered=steered)
                except (MeshError, NotFoundError):
                    continue
                except _CannotSteerError as error:
                    rollout = error.rollout.model_copy(update={"spec": rollout.spec})
        return self._write(rollout, invalid(rollout, problem, self.clock()), None)

    def _read_mesh(self, rollout: Rollout) -> _Mesh:
        namespace, spec = rollout.metadata.namespace, rollout.spec
        return _Mesh(
            virtual_service=self.cluster.get_virtual_service(namespace, spec.virtual_service.name),
            destination_rule=self.cluster.get_destination_rule(
                namespace, spec.destination_rule.name
            ),
        )

    def _converge(self, rollout: Rollout, mesh: _Mesh) -> tuple[Rollout, _Mesh]:
        plan = self._plan(rollout, mesh, traffic_for(rollout.spec, rollout.status))
        if not plan.writes:
            return rollout, mesh
        mesh = self._apply(rollout, plan)
        decision = traffic_restored(rollout, self.clock(), self._mesh_names(rollout))
        status = subset_moved(decision.status, self.clock()) or decision.status
        written, _ = self._write_status(rollout, status)
        self._record(rollout, decision.events)
        return written, mesh

    def _write(self, rollout: Rollout, decision: Decision, plan: _Plan | None) -> Outcome:
        self.on_decision(rollout, decision)
        written, response = self._write_status(rollout, decision.status)
        if plan is not None and plan.writes:
            self._apply(written, plan)
        stamped = subset_moved(written.status, self.clock())
        if stamped is not None:  # the stable subset has moved: the settle starts now
            written, response = self._write_status(written, stamped)
        self._record(rollout, decision.events)
        self._announce(rollout, decision)
        return Outcome(decision.requeue_after, response)

    # ------------------------------------------------------------ traffic

    def _plan(self, rollout: Rollout, mesh: _Mesh, traffic: Traffic | None) -> _Plan:
        """The writes that bring the objects to `traffic`, in a safe order (`write_plan`),
        planned on the objects as they are: a MeshError here means nothing was written."""
        if traffic is None or not self.may_write(rollout.key):
            return _Plan((), mesh)
        name, spec = rollout.metadata.name, rollout.spec
        vs, dr = mesh.virtual_service, mesh.destination_rule
        inputs = _MeshInputs.of(rollout, mesh)
        if inputs is not None and self._settled.get(rollout.key) == (inputs, traffic):
            return _Plan((), mesh)
        before = self.router.observe_traffic(vs, dr, name, spec)
        needed = []
        for write in write_plan(before, traffic):
            if write.target == "destinationRule":
                planned = self.router.plan_destination_rule(dr, name, spec, write.traffic)
                dr = planned.obj
            else:
                planned = self.router.plan_virtual_service(vs, name, spec, write.traffic)
                vs = planned.obj
            if planned.changed:
                needed.append(write)
        if needed or inputs is None:
            self._settled.pop(rollout.key, None)
        else:
            self._settled[rollout.key] = (inputs, traffic)
        return _Plan(tuple(needed), mesh)

    def _check(self, rollout: Rollout, mesh: _Mesh) -> None:
        """The router's checks of the mesh (MeshError: it cannot carry this Rollout)."""
        inputs = _MeshInputs.of(rollout, mesh)
        if inputs is not None and self._checked.get(rollout.key) == inputs:
            return
        self._checked.pop(rollout.key, None)
        self.router.check(
            mesh.virtual_service, mesh.destination_rule, rollout.metadata.name, rollout.spec
        )
        if inputs is not None:
            self._checked[rollout.key] = inputs

    def _fence(self, rollout: Rollout) -> None:
        """Before each write of traffic or status: a decision is written whole or not at all,
        never its traffic without its status (the release would run ahead of its record)."""
        if not self.may_write(rollout.key):
            raise FencedError(
                f"Rollout {rollout.key}: this replica is no longer sure of its Lease; "
                "not written, the Rollout is reconciled again by the replica holding it"
            )

    def forget(self, key: str) -> None:
        """The Rollout `key` is gone (or no longer this replica's): drop what is kept of it."""
        self._checked.pop(key, None)
        self._settled.pop(key, None)

    def _apply(self, rollout: Rollout, plan: _Plan) -> _Mesh:
        """Make the planned writes, in order (each planned again on the object it reads, so a
        409 retry never writes a stale plan); the objects as the API answered them."""
        namespace, spec = rollout.metadata.namespace, rollout.spec
        vs, dr = plan.mesh.virtual_service, plan.mesh.destination_rule
        for write in plan.writes:
            self._fence(rollout)
            if write.target == "destinationRule":
                dr = self.cluster.update_destination_rule(
                    namespace, spec.destination_rule.name, self._planner(rollout, write)
                ).obj
            else:
                vs = self.cluster.update_virtual_service(
                    namespace, spec.virtual_service.name, self._planner(rollout, write)
                ).obj
        return _Mesh(vs, dr)

    def _planner(self, rollout: Rollout, write: MeshWrite) -> Mutation:
        """The read-modify-write mutation of one planned write."""
        name, spec, traffic = rollout.metadata.name, rollout.spec, write.traffic
        if write.target == "destinationRule":
            return lambda obj: _if_changed(
                self.router.plan_destination_rule(obj, name, spec, traffic)
            )
        return lambda obj: _if_changed(self.router.plan_virtual_service(obj, name, spec, traffic))

    # ------------------------------------------------------------ writes

    def _write_status(self, rollout: Rollout, status: RolloutStatus) -> tuple[Rollout, Obj | None]:
        """Patch the status if it changed (a check that repeats the stored one is not a
        change); the Rollout as now stored, and the API's answer."""
        if not self.store_every_check and repeats_stored_check(rollout.status, status):
            return rollout, None
        old, new = rollout.status.wire(), status.wire()
        if old == new:
            return rollout.model_copy(update={"status": status}), None
        self._fence(rollout)
        response = self.cluster.patch_rollout_status(
            rollout.metadata.namespace,
            rollout.metadata.name,
            status_patch(old, new),
            _precondition(rollout, status),
        )
        if self.slots is not None:  # a release that began holds its slot from this write on
            self.slots.observe(response)
        meta = rollout.metadata.model_copy(
            update={"resource_version": response.get("metadata", {}).get("resourceVersion")}
        )
        return rollout.model_copy(update={"status": status, "metadata": meta}), response

    def _record(self, rollout: Rollout, events: tuple[Event, ...]) -> None:
        bound = log.bind(rollout=rollout.metadata.name, namespace=rollout.metadata.namespace)
        for event in events:
            say = bound.warning if event.type == "Warning" else bound.info
            say(event.message, reason=event.reason, type=event.type)
            if not self.may_write(rollout.key):
                continue
            try:
                self.cluster.record_event(
                    _involved(rollout), event.type, event.reason, event.message
                )
            except KubeError as error:
                bound.warning("event not recorded", error=str(error))

    def _announce(self, rollout: Rollout, decision: Decision) -> None:
        """Queue notifications and post-release webhooks; neither waits for a receiver."""
        if not self.may_write(rollout.key):
            return
        self.notifier.notify(rollout, notices_of(rollout, decision))
        if post_release_due(rollout.status, decision.status):
            self.webhooks.post_release(rollout, decision.status)

    def _ensure_finalizer(self, rollout: Rollout) -> Rollout:
        if FINALIZER in rollout.metadata.finalizers:
            return rollout
        finalizers = [*rollout.metadata.finalizers, FINALIZER]
        response = self.cluster.patch_rollout_metadata(
            rollout.metadata.namespace, rollout.metadata.name, {"finalizers": finalizers}
        )
        version = response.get("metadata", {}).get("resourceVersion")
        meta = rollout.metadata.model_copy(
            update={"finalizers": finalizers, "resource_version": version}
        )
        return rollout.model_copy(update={"metadata": meta})

    def _finalize(self, rollout: Rollout) -> Outcome:
        """A deleted Rollout hands its route back: stable 100 in a safe order (`_plan`), then
        its managed routes and its claims removed; nothing another Rollout claims is touched."""
        if FINALIZER not in rollout.metadata.finalizers or not self.may_write(rollout.key):
            return Outcome(None, None)
        namespace, name = rollout.metadata.namespace, rollout.metadata.name
        spec = rollout.status.last_valid_spec or rollout.spec
        held = rollout.model_copy(update={"spec": spec})
        stable = rollout.status.stable_version
        try:
            if stable is not None:
                self._apply(
                    held, self._plan(held, self._read_mesh(held), stable_only(stable, stable))
                )
                self._fence(held)
                self.cluster.update_virtual_service(
                    namespace,
                    spec.virtual_service.name,
                    lambda obj: _if_changed(
                        self.router.release_virtual_service(obj, name, spec, stable)
                    ),
                )
                self._fence(held)
                self.cluster.update_destination_rule(
                    namespace,
                    spec.destination_rule.name,
                    lambda obj: _if_changed(
                        self.router.release_destination_rule(obj, name, spec, stable)
                    ),
                )
        except (NotFoundError, MeshError) as error:
            log.warning("released without touching the mesh", rollout=name, error=str(error))
        log.info("rollout deleted; route handed back to stable", rollout=name, namespace=namespace)
        self._fence(rollout)
        self._drop_finalizer(rollout.metadata)
        return Outcome(None, None)

    def _drop_finalizer(self, meta: ObjectMeta) -> None:
        finalizers = [f for f in meta.finalizers if f != FINALIZER]
        self.cluster.patch_rollout_metadata(meta.namespace, meta.name, {"finalizers": finalizers})

    def _unreadable(self, obj: Obj, error: ValidationError, bound: Any) -> Outcome:
        """A spec that does not validate. A running release goes on, held, on its last valid
        spec; otherwise the Rollout is Invalid (its request still answered)."""
        meta = obj.get("metadata", {})
        namespace, name = meta.get("namespace", "default"), meta.get("name", "?")
        message = f"{KIND} {namespace}/{name} is invalid: " + "; ".join(
            describe_validation_error(error)
        )
        try:
            status = RolloutStatus.model_validate(obj.get("status") or {})
        except ValidationError:
            status = RolloutStatus()
        on_last = _with_spec(obj, status.last_valid_spec)
        if on_last is not None and on_last.metadata.deletion_timestamp is not None:
            return self._finalize(on_last)
        if on_last is not None and status.phase in RUNNING_PHASES:
            try:
                return self._reconcile(on_last, bound, spec_problem=message)
            except (MeshError, NotFoundError, _CannotSteerError):
                return self._held(on_last, message, bound)
        if meta.get("deletionTimestamp") and FINALIZER in (meta.get("finalizers") or []):
            self._drop_finalizer(ObjectMeta.model_validate(meta))  # nothing known to hand back
            return Outcome(None, None)
        request = pending_request_in(meta.get("annotations") or {}, status)
        decision = invalid_status(status, message, self.clock(), meta.get("generation"), request)
        if decision.status.wire() != status.wire() and self.may_write(f"{namespace}/{name}"):
            self.cluster.patch_rollout_status(
                namespace, name, status_patch(status.wire(), decision.status.wire())
            )
            for event in decision.events:
                log.warning(event.message, rollout=name, namespace=namespace, reason=event.reason)
                self.cluster.record_event(obj, event.type, event.reason, event.message)
        return Outcome(None, None)

    # ------------------------------------------------------------ observations

    def _canary_state(self, rollout: Rollout, mesh: _Mesh) -> WorkloadState:
        """Whether the canary workload may take traffic: ready, and selected by the subsets."""
        ref = rollout.spec.canary.workload_ref
        if ref is None:
            return WorkloadState(exists=True, ready=True, message="the canary workload")
        namespace = rollout.metadata.namespace
        state = self.cluster.workload_state(namespace, ref.kind, ref.name)
        if state.pod_labels is None:
            return state
        unfit = self.router.canary_fit(
            mesh.destination_rule,
            rollout.spec,
            f"{ref.kind} {namespace}/{ref.name}",
            state.pod_labels,
        )
        return state if unfit is None else WorkloadState(True, False, unfit, state.pod_labels)

    def _live_version(self, rollout: Rollout, mesh: _Mesh) -> str:
        """The stable version: as the status keeps it, or (the first time) as the stable
        subset selects it; a MeshError when it cannot be read."""
        if rollout.status.stable_version is not None:
            return rollout.status.stable_version
        return self.router.stable_version(
            mesh.destination_rule, rollout.metadata.name, rollout.spec
        )

    def _mesh_names(self, rollout: Rollout) -> str:
        ns = rollout.metadata.namespace
        return (
            f"VirtualService {ns}/{rollout.spec.virtual_service.name} or "
            f"DestinationRule {ns}/{rollout.spec.destination_rule.name}"
        )


def _with_spec(obj: Obj, spec: RolloutSpec | None) -> Rollout | None:
    """The Rollout of `obj` on another spec (its last valid one); None if even that fails."""
    if spec is None:
        return None
    try:
        return Rollout.model_validate({**obj, "spec": spec.wire()})
    except ValidationError:
        return None


def _precondition(rollout: Rollout, status: RolloutStatus) -> str | None:
    """A status that answers a request is stored only if the Rollout is still the one read:
    a request the CLI withdrew meanwhile (it gave up) is then never acted on."""
    answers = status.handled_request is not None and status.handled_request != (
        rollout.status.handled_request
    )
    return rollout.metadata.resource_version if answers else None


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
