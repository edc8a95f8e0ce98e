"""Where an online command talks to: the kubeconfig, its context and namespace, and the connected
`Cluster` (only `kube_cluster` imports the adapter, and with it `kubernetes`), with the port's
typed errors turned into one sentence about the command's Rollout."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from canary.cli.errors import UserError, crd_missing_message, first_line, forbidden_message
from canary.core.objects import Obj
from canary.kube.kubeconfig import Kubeconfig, KubeconfigError, kubeconfig_files, merge
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
    """The kubeconfig as resolved: the merged files, the context, and the namespace to use."""

    kubeconfig: Kubeconfig | None  # None in a pod (its service account)
    context: str | None
    namespace: str


def resolve(target: Target) -> KubeContext:
    """The kubeconfig, context and namespace this command uses, or a clear UserError."""
    try:
        files = kubeconfig_files(target.kubeconfig)
        kubeconfig = merge(files) if files else None
    except KubeconfigError as error:
        raise UserError(str(error)) from None
    if kubeconfig is None:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            return KubeContext(None, None, target.namespace or DEFAULT_NAMESPACE)
        raise UserError(
            "no kubeconfig found (~/.kube/config or $KUBECONFIG): pass --kubeconfig or set "
            "KUBECONFIG"
        )
    name = target.context or kubeconfig.current_context
    if not name:
        raise UserError("the kubeconfig has no current context: pass --context")
    contexts = kubeconfig.contexts()
    if name not in contexts:
        known = ", ".join(sorted(contexts)) or "none"
        raise UserError(f"context {name!r} is not in the kubeconfig (contexts: {known})")
    namespace = target.namespace or contexts[name].get("namespace") or DEFAULT_NAMESPACE
    return KubeContext(kubeconfig, name, str(namespace))


def kube_cluster(context: KubeContext) -> Cluster:
    """The real adapter; imported here so `canary --help` never loads `kubernetes`."""
    from canary.kube.client import KubeCluster

    if context.kubeconfig is None:
        return KubeCluster.in_cluster(qps=CLI_QPS, burst=CLI_BURST)
    return KubeCluster.from_merged(
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
