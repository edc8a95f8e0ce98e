"""Commands that need no cluster: `crd`, `lint` and `plan`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from pydantic import ValidationError

from canary.cli.documents import Document, DocumentError, read_documents, read_one
from canary.core.crd import rollout_crd
from canary.core.durations import format_duration
from canary.core.errors import describe_validation_error
from canary.core.model import KIND, Rollout
from canary.core.objects import Obj
from canary.core.simulate import walk
from canary.core.spec import NoDataPolicy
from canary.core.status import RolloutStatus
from canary.core.traffic import Traffic, stable_only
from canary.mesh.istio import (
    MeshError,
    canary_fit,
    check,
    plan_destination_rule,
    plan_virtual_service,
    stable_version,
)
from canary.metrics.promql import TemplateError, render_template, target_of

PLAN_START = datetime(2000, 1, 1, tzinfo=UTC)


def crd_yaml() -> str:
    return dump_yaml(rollout_crd())


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)


# ---------------------------------------------------------------- lint

WARNING = "warning: "
FAILURE_LIMIT_WARNING = 100  # consecutive failed checks: at 30 s each, almost an hour


def lint(paths: list[str]) -> list[str]:
    """Every problem in the files, one sentence each, then warnings (starting "warning: ")
    about settings that switch a protection off; no problem means all is valid.

    A Rollout is checked as the controller checks it at run time: its schema, its custom
    queries' placeholders and, when the files also hold the VirtualService, DestinationRule or
    canary Deployment it names, what the controller would refuse in them.
    """
    lines: list[str] = []
    documents: list[Document] = []
    for path in paths:
        try:
            documents += list(read_documents(path))
        except DocumentError as error:
            lines.append(str(error))
    rollouts = [d for d in documents if d.kind == KIND]
    for document in rollouts:
        lines += lint_rollout(document, documents)
    if not lines and not rollouts:
        lines.append(f"no {KIND} found in {', '.join(paths)}: nothing to lint")
    return sorted(lines, key=lambda line: WARNING in line)


def problems_only(lines: list[str]) -> list[str]:
    return [line for line in lines if WARNING not in line]


def lint_rollout(document: Document, others: list[Document] | None = None) -> list[str]:
    prefix = f"{document.source}: {KIND} {document.name}: "
    try:
        rollout = Rollout.model_validate(document.body)
    except ValidationError as error:
        return [prefix + sentence for sentence in describe_validation_error(error)]
    found = [*_query_problems(rollout), *_mesh_problems(rollout, others or [])]
    return [prefix + line for line in (*found, *_warnings(rollout))]


def _query_problems(rollout: Rollout) -> list[str]:
    target = target_of(rollout.model_copy(update={"status": _EXAMPLE_STATUS}))
    problems = []
    for gate in rollout.spec.analysis.gates:
        if gate.query is None:
            continue
        try:
            render_template(gate.query, target)
        except TemplateError as error:
            problems.append(f"spec.analysis.gates[{gate.name}].query: {error}")
    return problems


_EXAMPLE_STATUS = RolloutStatus(stable_version="stable-version", canary_version="canary-version")


def _mesh_problems(rollout: Rollout, documents: list[Document]) -> list[str]:
    """What the controller would refuse in the mesh objects and workload given with it."""
    spec, namespace = rollout.spec, rollout.metadata.namespace
    dr = _named(documents, "DestinationRule", namespace, spec.destination_rule.name)
    vs = _named(documents, "VirtualService", namespace, spec.virtual_service.name)
    ref = spec.canary.workload_ref
    deployment = _named(documents, "Deployment", namespace, ref.name) if ref else None
    try:
        if vs is not None and dr is not None:  # routes, claims and subsets, as the controller
            check(vs, dr, rollout.metadata.name, spec)
        stable = stable_version(dr, rollout.metadata.name, spec) if dr is not None else None
        if vs is not None and stable is not None:
            traffic = stable_only(stable, spec.canary.version)
            plan_virtual_service(vs, rollout.metadata.name, spec, traffic)
        if dr is not None and deployment is not None and ref is not None:
            unfit = canary_fit(
                dr, spec, f"Deployment {namespace}/{ref.name}", _pod_labels(deployment)
            )
            if unfit is not None:
                raise MeshError(unfit)
    except MeshError as error:
        return [str(error)]
    return []


def _named(documents: list[Document], kind: str, namespace: str, name: str) -> Obj | None:
    """The object of `kind` named `name` among the files; one without a namespace is taken to
    be in the Rollout's (as `kubectl apply -n` would put it)."""
    for document in documents:
        meta = document.body.get("metadata")
        if document.kind != kind or not isinstance(meta, dict) or meta.get("name") != name:
            continue
        if (meta.get("namespace") or namespace) == namespace:
            return document.body
    return None


def _pod_labels(deployment: Obj) -> dict[str, str]:
    template = (deployment.get("spec") or {}).get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    return {str(key): str(value) for key, value in labels.items()}


def _warnings(rollout: Rollout) -> list[str]:
    spec = rollout.spec
    warnings = []
    if spec.analysis.failure_limit >= FAILURE_LIMIT_WARNING:
        checks = spec.analysis.failure_limit * spec.analysis.interval
        warnings.append(
            f"spec.analysis.failureLimit {spec.analysis.failure_limit} rolls a failing canary "
            f"back only after {format_duration(checks)} of failed checks: is that meant?"
        )
    if spec.promotion.settle_delay == timedelta(0):
        warnings.append(
            "spec.promotion.settleDelay 0s sends stable traffic to the moved subset before "
            "every proxy has its endpoints, which can answer 503: give it a few seconds"
        )
    if spec.analysis.no_data is NoDataPolicy.PASS:
        warnings.append(
            "spec.analysis.noData pass lets a check without data count as a pass: a canary "
            "that gets no traffic is promoted on no evidence"
        )
    return [WARNING + warning for warning in warnings]


def load_rollout(path: str, version: str | None = None) -> Rollout:
    """The Rollout in `path`, as a fresh release of `version` (default: its own)."""
    document = read_one(path, KIND)
    try:
        rollout = Rollout.model_validate(document.body)
    except ValidationError as error:
        raise DocumentError(
            f"{document.source}: {KIND} {document.name}: "
            + "; ".join(describe_validation_error(error))
        ) from None
    if version is not None:
        canary = rollout.spec.canary.model_copy(update={"version": version})
        spec = rollout.spec.model_copy(update={"canary": canary})
        rollout = rollout.model_copy(update={"spec": spec})
    return rollout.model_copy(update={"status": RolloutStatus()})


# ---------------------------------------------------------------- plan


@dataclass(frozen=True)
class PlannedStep:
    number: int
    after: str
    position: str
    traffic: Traffic
    virtual_service: dict[str, Any]
    destination_rule: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "step": self.number,
            "after": self.after,
            "position": self.position,
            "canaryWeight": self.traffic.canary_weight,
            "mirrorPercent": self.traffic.mirror_percent,
            "headerRoute": self.traffic.header_route,
            "virtualService": self.virtual_service,
            "destinationRule": self.destination_rule,
        }


def plan(
    rollout_path: str, vs_path: str, dr_path: str, version: str | None = None
) -> list[PlannedStep]:
    """The VirtualService and DestinationRule the controller writes at each change of a
    healthy release of `version` (default: `spec.canary.version`), from the objects as they
    are today. A DestinationRule whose stable subset has no version label is refused, as
    the controller refuses it: nothing tells which version is live."""
    rollout = load_rollout(rollout_path, version)
    virtual_service = read_one(vs_path, "VirtualService").body
    destination_rule = read_one(dr_path, "DestinationRule").body
    check(virtual_service, destination_rule, rollout.metadata.name, rollout.spec)
    live = stable_version(destination_rule, rollout.metadata.name, rollout.spec)
    steps: list[PlannedStep] = []
    last_traffic: Traffic | None = None
    for tick in walk(rollout, PLAN_START, live):
        traffic = tick.decision.traffic
        if traffic is None or traffic == last_traffic:
            continue
        last_traffic = traffic
        virtual_service = plan_virtual_service(
            virtual_service, rollout.metadata.name, rollout.spec, traffic
        ).obj
        destination_rule = plan_destination_rule(
            destination_rule, rollout.metadata.name, rollout.spec, traffic
        ).obj
        status = tick.decision.status
        steps.append(
            PlannedStep(
                number=len(steps) + 1,
                after=_elapsed(tick.time),
                position=status.message or str(status.phase),
                traffic=traffic,
                virtual_service=virtual_service,
                destination_rule=destination_rule,
            )
        )
    return steps


def _elapsed(moment: datetime) -> str:
    seconds = int((moment - PLAN_START).total_seconds())
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def render_plan(steps: list[PlannedStep], output: str) -> str:
    if output == "json":
        return json.dumps([s.as_json() for s in steps], indent=2)
    chunks = []
    for step in steps:
        t = step.traffic
        summary = (
            f"stable {t.stable_weight}% / canary {t.canary_weight}%"
            + (f", mirror {t.mirror_percent:g}%" if t.mirror_percent else "")
            + (", header route" if t.header_route else "")
            + f"; stable subset -> {t.stable_version}, canary subset -> {t.canary_version}"
        )
        chunks.append(
            f"# {step.number}. {step.position} (at +{step.after} if every check passes)\n"
            f"# {summary}\n---\n{dump_yaml(step.virtual_service)}---\n"
            f"{dump_yaml(step.destination_rule)}"
        )
    return "\n".join(chunks)
