"""Where an online command talks to: the kubeconfig, its context and namespace, and the connected
`Cluster` (only `kube_cluster` imports the adapter, and with it `kubernetes`), with the port's
typed errors turned into one sentence about the command's Rollout."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from canary.cli.errors import UserError, crd_missing_message, first_line, forbidden_message
from canary.core.objects import Obj
from canary.kube.port import (
    Cluster,
    CrdMissingError,
    ForbiddenError,
    KubeError,
    NotFoundError,
    UnavailableError,
)

DEFAULT_NAMESPACE = "default"
CLI_QPS, CLI_BURST = 20.0, 40
CLI_RETRIES = 1  # a person is waiting; `wait` retries on its own schedule


@dataclass(frozen=True)
class Target:
    """Where the command talks to, as the user asked on the command line."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False


@dataclass(frozen=True)
class KubeContext:
    """The kubeconfig as resolved: which file and context, and the namespace to use."""

    kubeconfig: str | None
    context: str | None
    namespace: str
    in_cluster: bool = False


def kubeconfig_paths(explicit: str | None) -> list[Path]:
    if explicit:
        return [Path(explicit).expanduser()]
    listed = os.environ.get("KUBECONFIG", "")
    if listed:
        return [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


def load_kubeconfig(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UserError(f"cannot read kubeconfig {path}: {error.strerror}") from None
    except yaml.YAMLError:
        raise UserError(f"kubeconfig {path} is not valid YAML: fix or regenerate it") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise UserError(f"kubeconfig {path} is not a kubeconfig (expected a mapping)")
    return document


def merged_kubeconfig(paths: list[Path]) -> dict[str, Any]:
    """kubectl's merge: the first file that sets a value or names an entry wins."""
    merged: dict[str, Any] = {"contexts": [], "current-context": None}
    seen: set[str] = set()
    for path in paths:
        document = load_kubeconfig(path)
        merged["current-context"] = merged["current-context"] or document.get("current-context")
        for entry in document.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name") not in seen:
                seen.add(str(entry.get("name")))
                merged["contexts"].append(entry)
    return merged


def resolve(target: Target) -> KubeContext:
    """The kubeconfig file, context and namespace this command uses, or a clear UserError."""
    paths = kubeconfig_paths(target.kubeconfig)
    existing = [p for p in paths if p.is_file()]
    if target.kubeconfig and not existing:
        raise UserError(f"kubeconfig {target.kubeconfig} does not exist: check --kubeconfig")
    if not existing:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            return KubeContext(None, None, target.namespace or DEFAULT_NAMESPACE, in_cluster=True)
        raise UserError(
            "no kubeconfig found (~/.kube/config or $KUBECONFIG): pass --kubeconfig or set "
            "KUBECONFIG"
        )
    config = merged_kubeconfig(existing)
    name = target.context or config["current-context"]
    if not name:
        raise UserError("the kubeconfig has no current context: pass --context")
    contexts = {str(c.get("name")): c.get("context") or {} for c in config["contexts"]}
    if name not in contexts:
        known = ", ".join(sorted(contexts)) or "none"
        raise UserError(f"context {name!r} is not in the kubeconfig (contexts: {known})")
    namespace = target.namespace or contexts[name].get("namespace") or DEFAULT_NAMESPACE
    return KubeContext(target.kubeconfig, target.context, str(namespace))


def kube_cluster(context: KubeContext) -> Cluster:
    """The real adapter; imported here so `canary --help` never loads `kubernetes`."""
    from canary.kube.client import KubeCluster

    if context.in_cluster:
        return KubeCluster.in_cluster(qps=CLI_QPS, burst=CLI_BURST)
    return KubeCluster.from_kubeconfig(
        context.kubeconfig, context.context, qps=CLI_QPS, burst=CLI_BURST, retries=CLI_RETRIES
    )


ClusterFactory = Callable[[KubeContext], Cluster]


@dataclass
class Session:
    """A resolved target plus a connected Cluster: what every online command starts from."""

    context: KubeContext
    cluster: Cluster
    all_namespaces: bool = False

    @property
    def namespace(self) -> str:
        return self.context.namespace


def open_session(target: Target, factory: ClusterFactory = kube_cluster) -> Session:
    context = resolve(target)
    try:
        cluster = factory(context)
    except KubeError as error:
        raise UserError(str(error)) from None
    except (OSError, ValueError, TypeError) as error:
        raise UserError(f"invalid kubeconfig: {first_line(error)}") from None
    except Exception as error:  # the kubernetes client's ConfigException and friends
        if type(error).__name__ == "ConfigException":
            raise UserError(f"invalid kubeconfig: {first_line(error)}") from None
        raise
    return Session(context, cluster, target.all_namespaces)


@contextmanager
def explained(session: Session, verb: str, name: str | None = None) -> Iterator[None]:
    """Turn the port's typed errors into one sentence about this command's Rollout."""
    namespace = None if session.all_namespaces and name is None else session.namespace
    try:
        yield
    except NotFoundError:
        if name is None:
            raise UserError(crd_missing_message()) from None
        raise UserError(
            f"Rollout {namespace}/{name} not found: check the name and namespace (-n)",
            missing=True,
        ) from None
    except CrdMissingError:
        raise UserError(crd_missing_message()) from None
    except ForbiddenError:
        raise UserError(forbidden_message(verb, namespace)) from None
    except UnavailableError as error:
        raise UserError(str(error), transient=True) from None
    except KubeError as error:
        raise UserError(str(error)) from None
    except OSError as error:
        message = f"cannot connect to the Kubernetes API: {first_line(error)}"
        raise UserError(message, transient=True) from None


def now_utc() -> datetime:
    return datetime.now(UTC)


def read_rollout(session: Session, name: str) -> Obj:
    with explained(session, "get", name):
        return session.cluster.get_rollout(session.namespace, name)
