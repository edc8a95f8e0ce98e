"""Commands that need no cluster: `crd`, `lint` and `plan`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml
from pydantic import ValidationError

from canary.cli.documents import Document, DocumentError, read_documents, read_one
from canary.core.crd import rollout_crd
from canary.core.errors import describe_validation_error
from canary.core.model import KIND, Rollout, RolloutStatus
from canary.core.simulate import walk
from canary.core.traffic import Traffic
from canary.mesh.istio import MeshError, check, plan_destination_rule, plan_virtual_service

PLAN_START = datetime(2000, 1, 1, tzinfo=UTC)


def crd_yaml() -> str:
    return dump_yaml(rollout_crd())


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)


# ---------------------------------------------------------------- lint


def lint(paths: list[str]) -> list[str]:
    """Every problem in the files, one sentence each; an empty list means all is valid."""
    problems: list[str] = []
    documents: list[Document] = []
    for path in paths:
        try:
            documents += list(read_documents(path))
        except DocumentError as error:
            problems.append(str(error))
    rollouts = [document for document in documents if document.kind == KIND]
    for document in rollouts:
        problems += lint_rollout(document) or lint_mesh(document, documents)
    if not problems and not rollouts:
        problems.append(f"no {KIND} found in {', '.join(paths)}: nothing to lint")
    return problems


def lint_rollout(document: Document) -> list[str]:
    try:
        Rollout.model_validate(document.body)
    except ValidationError as error:
        prefix = f"{document.source}: {KIND} {document.name}: "
        return [prefix + sentence for sentence in describe_validation_error(error)]
    return []


def lint_mesh(document: Document, documents: list[Document]) -> list[str]:
    """The problems `check` finds with the Rollout's VirtualService and DestinationRule, when
    both are among the files (the routes, claims and subsets the controller would refuse)."""
    rollout = Rollout.model_validate(document.body)
    namespace, spec = rollout.metadata.namespace, rollout.spec
    vs = _named(documents, "VirtualService", namespace, spec.virtual_service.name)
    dr = _named(documents, "DestinationRule", namespace, spec.destination_rule.name)
    if vs is None or dr is None:
        return []
    try:
        check(vs.body, dr.body, rollout.metadata.name, spec)
    except MeshError as error:
        return [f"{document.source}: {KIND} {document.name}: {error}"]
    return []


def _named(documents: list[Document], kind: str, namespace: str, name: str) -> Document | None:
    for document in documents:
        meta = document.body.get("metadata")
        if document.kind != kind or not isinstance(meta, dict) or meta.get("name") != name:
            continue
        if (meta.get("namespace") or namespace) == namespace:
            return document
    return None


def load_rollout(path: str) -> Rollout:
    document = read_one(path, KIND)
    try:
        rollout = Rollout.model_validate(document.body)
    except ValidationError as error:
        raise DocumentError(
            f"{document.source}: {KIND} {document.name}: "
            + "; ".join(describe_validation_error(error))
        ) from None
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


def plan(rollout_path: str, vs_path: str, dr_path: str) -> list[PlannedStep]:
    """The VirtualService and DestinationRule the controller writes at each change of a
    healthy release of `spec.canary.version`, from the objects as they are today."""
    rollout = load_rollout(rollout_path)
    virtual_service = read_one(vs_path, "VirtualService").body
    destination_rule = read_one(dr_path, "DestinationRule").body
    check(virtual_service, destination_rule, rollout.metadata.name, rollout.spec)
    stable_version = _stable_version(rollout, destination_rule)
    steps: list[PlannedStep] = []
    last_traffic: Traffic | None = None
    for tick in walk(rollout, PLAN_START, stable_version):
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


def _stable_version(rollout: Rollout, destination_rule: dict[str, Any]) -> str | None:
    for subset in destination_rule.get("spec", {}).get("subsets", []) or []:
        if subset.get("name") == rollout.spec.stable.subset:
            version = (subset.get("labels") or {}).get(rollout.spec.version_label)
            return str(version) if version is not None else None
    raise MeshError(
        f"DestinationRule {destination_rule.get('metadata', {}).get('name')} has no subset "
        f"named {rollout.spec.stable.subset!r}: add it or fix spec.stable.subset"
    )


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
