"""The commands that talk to a cluster: get, promote/pause/resume/retry/abort, wait.

Everything goes through the `Cluster` port; only `connect` imports the adapter (and with it
`kubernetes`). A problem the user can fix becomes a `UserError`: one sentence, an exit code,
never a traceback. Rendering lives in `render`, exit-code decisions in `waiting`.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from canary.cli import render, waiting
from canary.core.objects import Obj, key_of, metadata_of, resource_version
from canary.kube.port import (
    Cluster,
    CrdMissingError,
    ForbiddenError,
    KubeError,
    NotFoundError,
    UnavailableError,
)

DEFAULT_NAMESPACE = "default"
ACK_POLL_SECONDS = 0.25
CLI_QPS, CLI_BURST = 20.0, 40
CLI_RETRIES = 1  # a person is waiting; `wait` retries on its own schedule
NO_CONTROLLER_HINT = "is the canary controller running (kubectl -n canary-system get pods)?"


class UserError(Exception):
    """A problem the user can fix: one sentence and the exit code to leave with."""

    def __init__(
        self, message: str, code: int = 1, transient: bool = False, missing: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.transient = transient  # the API could not be reached: worth another try
        self.missing = missing  # the Rollout named does not exist


# ---------------------------------------------------------------- kubeconfig and connection


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


def first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


# ---------------------------------------------------------------- errors, in the user's words


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


def crd_missing_message() -> str:
    return (
        "the Rollout CRD (rollouts.canary.dev) is not installed in this cluster: "
        "install it with `canary crd | kubectl apply -f -`"
    )


def forbidden_message(verb: str, namespace: str | None) -> str:
    scope = f"in namespace {namespace}" if namespace else "in all namespaces"
    check = f"kubectl auth can-i {verb} rollouts.canary.dev"
    check += f" -n {namespace}" if namespace else " -A"
    return (
        f"forbidden: your Kubernetes user may not {verb} rollouts.canary.dev {scope}: "
        f"ask for RBAC access (check with `{check}`)"
    )


def parse_timeout(value: str, option: str = "--timeout") -> timedelta:
    from canary.core.durations import parse_duration

    try:
        return parse_duration(0 if value.strip() == "0" else value)  # 0 needs no unit
    except ValueError as error:
        raise UserError(f"{option}: {error}") from None


def now_utc() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- get


@dataclass
class Printer:
    """Where output goes: a rich Console for tables, plain text for documents and CI lines."""

    output: str = "table"
    echo: Callable[[str], None] = print
    console: Any = None  # rich.console.Console (see make_console)
    documents: int = 0

    def document(self, obj: Obj) -> None:
        """One object as JSON or YAML; YAML documents after the first start with `---`."""
        if self.output == "json":
            self.echo(render.as_json(obj))
        else:
            separator = "---\n" if self.documents else ""
            self.echo(separator + render.as_yaml(obj).rstrip("\n"))
        self.documents += 1

    def show(self, renderable: Any) -> None:
        """A rich renderable; without a terminal, plain lines with no trailing padding."""
        if self.console.is_terminal:
            self.console.print(renderable)
            return
        with self.console.capture() as captured:
            self.console.print(renderable)
        self.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))

    def separator(self) -> None:
        from rich.rule import Rule

        self.show(Rule())


def make_console() -> Any:
    """A rich Console; when the output is not a terminal: no ANSI and no wrapping at 80."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        width = max(int(os.environ.get("COLUMNS", "0") or 0), 200)
        console = Console(highlight=False, no_color=True, width=width, soft_wrap=False)
    return console


def get(session: Session, name: str | None, output: str, watch: bool, printer: Printer) -> None:
    if name is not None and session.all_namespaces:
        raise UserError("a Rollout cannot be read by name across all namespaces: drop -A")
    if name is None:
        get_list(session, output, watch, printer)
    else:
        get_one(session, name, output, watch, printer)


def list_namespace(session: Session) -> str | None:
    return None if session.all_namespaces else session.namespace


def get_list(session: Session, output: str, watch: bool, printer: Printer) -> None:
    with explained(session, "list"):
        rollouts = session.cluster.list_rollouts(list_namespace(session))
    rollouts = sorted(rollouts, key=key_of)
    if output != "table" and not watch:
        printer.document(render.as_list(rollouts))
        return
    show_list(session, rollouts, output, printer)
    if watch:
        watch_list(session, {key_of(r): r for r in rollouts}, output, printer)


def show_list(session: Session, rollouts: list[Obj], output: str, printer: Printer) -> None:
    if output != "table":
        for rollout in rollouts:
            printer.document(rollout)
        return
    if not rollouts:
        where = "any namespace" if session.all_namespaces else f"namespace {session.namespace}"
        printer.echo(f"No Rollouts found in {where}.")
        return
    printer.show(render.rollout_table(rollouts, now_utc(), session.all_namespaces))


def watch_list(session: Session, known: dict[str, Obj], output: str, printer: Printer) -> None:
    """kubectl get -w: print the table again (or the changed object) after every change."""
    for event_type, obj in rollout_changes(session, None):
        if obj is None:
            continue
        if event_type == "DELETED":
            known.pop(key_of(obj), None)
        else:
            known[key_of(obj)] = obj
        if output == "table":
            show_list(session, sorted(known.values(), key=key_of), output, printer)
        else:
            printer.document(obj)


def get_one(session: Session, name: str, output: str, watch: bool, printer: Printer) -> None:
    rollout = read_rollout(session, name)
    if output != "table":
        printer.document(rollout)
        if watch and not waiting.release_ended(rollout):
            watch_documents(session, name, rollout, printer)
        return
    if watch and printer.console.is_terminal:
        watch_live(session, name, rollout, printer)
        return
    printer.show(detail(session, rollout))
    if watch and not waiting.release_ended(rollout):
        for changed in changes_until_ended(session, name, rollout):
            printer.separator()
            printer.show(detail(session, changed))


def read_rollout(session: Session, name: str) -> Obj:
    with explained(session, "get", name):
        return session.cluster.get_rollout(session.namespace, name)


def detail(session: Session, rollout: Obj) -> Any:
    return render.rollout_detail(rollout, read_events(session, rollout), now_utc())


def read_events(session: Session, rollout: Obj) -> list[Obj]:
    """Recent Events of the Rollout; none (rather than an error) when they cannot be read."""
    name = str(metadata_of(rollout).get("name", ""))
    try:
        return session.cluster.list_events(session.namespace, name)
    except (KubeError, OSError):
        return []


def watch_live(session: Session, name: str, rollout: Obj, printer: Printer) -> None:
    from rich.live import Live

    with Live(detail(session, rollout), console=printer.console, auto_refresh=False) as live:
        if waiting.release_ended(rollout):
            return
        for changed in changes_until_ended(session, name, rollout):
            live.update(detail(session, changed), refresh=True)


def watch_documents(session: Session, name: str, rollout: Obj, printer: Printer) -> None:
    for changed in changes_until_ended(session, name, rollout):
        printer.document(changed)


def changes_until_ended(session: Session, name: str, first: Obj) -> Iterator[Obj]:
    """Each new version of one Rollout, until its current release ends (or it is deleted)."""
    last_version = resource_version(first)
    for event_type, obj in rollout_changes(session, name):
        if obj is None:
            continue
        if event_type == "DELETED":
            raise UserError(f"Rollout {session.namespace}/{name} was deleted")
        if resource_version(obj) == last_version:
            continue
        last_version = resource_version(obj)
        yield obj
        if waiting.release_ended(obj):
            return


def rollout_changes(session: Session, name: str | None) -> Iterator[tuple[str, Obj | None]]:
    """(type, object) for every change in the namespace (or only to `name`); SYNC is unfolded."""
    stop = threading.Event()
    namespace = session.namespace if name is not None else list_namespace(session)
    try:
        with explained(session, "watch", name):
            for event in session.cluster.stream_rollouts(namespace, stop):
                objects = event.objects if event.type == "SYNC" else (event.object,)
                for obj in objects:
                    if obj is not None and (name is None or object_name(obj) == name):
                        yield event.type, obj
    finally:
        stop.set()


def object_name(obj: Obj) -> str:
    return str(metadata_of(obj).get("name", ""))


# ---------------------------------------------------------------- requests


@dataclass(frozen=True)
class RequestOptions:
    timeout: timedelta = timedelta(seconds=10)
    wait: bool = True
    poll_seconds: float = ACK_POLL_SECONDS


@dataclass(frozen=True)
class RequestOutcome:
    code: int
    message: str


def request_metadata(action: Any, request_id: str, expires: datetime | None = None) -> Obj:
    """The metadata merge patch that asks the controller for `action`; spec is never touched."""
    from canary.core.model import REQUEST_ANNOTATION
    from canary.core.requests import encode_request

    return {"annotations": {REQUEST_ANNOTATION: encode_request(action, request_id, expires)}}


def send_request(
    session: Session,
    name: str,
    action: Any,
    options: RequestOptions,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall_clock: Callable[[], datetime] = now_utc,
) -> RequestOutcome:
    """Write the request annotation, then wait for the controller's answer in the status.

    A request the CLI waits for expires when the wait does: the controller never acts on it
    later, and on a timeout the CLI also withdraws it (`withdraw`), so what it reports is
    what happened.
    """
    request_id = str(uuid.uuid4())
    expires = wall_clock() + options.timeout if options.wait else None
    with explained(session, "patch", name):
        session.cluster.patch_rollout_metadata(
            session.namespace, name, request_metadata(action, request_id, expires)
        )
    key = f"Rollout {session.namespace}/{name}"
    if not options.wait:
        return RequestOutcome(0, f"{action.value} requested for {key} (request {request_id})")
    handled = await_answer(session, name, request_id, options, clock=clock, sleep=sleep)
    if handled is None:
        return withdraw(session, name, request_id, options, expires)
    return answered(key, handled)


def answered(key: str, handled: Obj) -> RequestOutcome:
    result = str(handled.get("result", ""))
    failed = result.startswith(("rejected", "expired"))
    return RequestOutcome(1 if failed else 0, f"{key}: {result}")


def withdraw(
    session: Session, name: str, request_id: str, options: RequestOptions, expires: datetime | None
) -> RequestOutcome:
    """No answer in time: take the request back. The controller stores an answer only while
    the Rollout is as it read it, so once the annotation is gone the request cannot be acted
    on; if it answered meanwhile, that answer is the outcome."""
    from canary.core.durations import format_duration
    from canary.core.model import REQUEST_ANNOTATION
    from canary.core.requests import parse_request
    from canary.kube.port import ConflictError

    key = f"Rollout {session.namespace}/{name}"
    silent = f"no controller answered within {format_duration(options.timeout)}"
    for _ in range(5):
        try:
            rollout = read_rollout(session, name)
            handled = waiting.handled_request(rollout, request_id)
            if handled is not None:
                return answered(key, handled)
            raw = (metadata_of(rollout).get("annotations") or {}).get(REQUEST_ANNOTATION)
            if raw is None or parse_request(raw).id != request_id:
                return RequestOutcome(
                    2, f"{silent}, and another request has replaced it: it was not acted on"
                )
            version = resource_version(rollout)
            session.cluster.patch_rollout_metadata(
                session.namespace,
                name,
                {"resourceVersion": version, "annotations": {REQUEST_ANNOTATION: None}},
            )
        except ConflictError:
            continue  # the Rollout changed (perhaps the answer): look again
        except (UserError, KubeError, OSError) as error:
            until = expires.isoformat().replace("+00:00", "Z") if expires else "never"
            return RequestOutcome(
                2,
                f"{silent}, and the request could not be withdrawn ({first_line(error)}): it "
                f"expires at {until} and is not acted on after that; {NO_CONTROLLER_HINT}",
            )
        return RequestOutcome(
            2, f"{silent}: the request was withdrawn and will not be acted on; {NO_CONTROLLER_HINT}"
        )
    return RequestOutcome(2, f"{silent}, and {key} kept changing while the CLI withdrew it")


def await_answer(
    session: Session,
    name: str,
    request_id: str,
    options: RequestOptions,
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> Obj | None:
    """status.handledRequest once its id is ours, or None when the timeout runs out."""
    deadline = clock() + options.timeout.total_seconds()
    while True:
        rollout = read_rollout(session, name)
        handled = waiting.handled_request(rollout, request_id)
        if handled is not None:
            return handled
        remaining = deadline - clock()
        if remaining <= 0:
            return None
        sleep(min(options.poll_seconds, remaining))


# ---------------------------------------------------------------- wait


@dataclass(frozen=True)
class WaitOptions:
    wait_for: waiting.WaitFor = waiting.WaitFor.SUCCEEDED
    timeout: timedelta = timedelta(minutes=30)
    interval: timedelta = timedelta(seconds=2)
    paused_ok: bool = False
    timeout_text: str = "30m"
    version: str | None = None  # the version waited for; default: the spec's at the start


@dataclass
class ProgressLog:
    """One line per change, in words a CI log can show; transient API trouble said once."""

    echo: Callable[[str], None]
    last: tuple[str, ...] | None = None
    trouble: str | None = field(default=None)

    def rollout(self, rollout: Obj) -> None:
        fields = render.progress_fields(rollout)
        if fields != self.last:
            self.last = fields
            self.trouble = None
            self.echo(render.progress_line(rollout, now_utc()))

    def problem(self, message: str) -> None:
        if message != self.trouble:
            self.trouble = message
            self.echo(f"{render.stamp(now_utc())}  (retrying) {message}")


def wait(
    session: Session,
    name: str,
    options: WaitOptions,
    log: ProgressLog,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> waiting.Outcome:
    """Poll the Rollout until `waiting.decide` answers or the timeout runs out."""
    deadline = clock() + options.timeout.total_seconds()
    rollout: Obj | None = None
    version = options.version
    while True:
        try:
            rollout = read_rollout(session, name)
        except UserError as error:
            if error.missing:
                return waiting.Outcome(waiting.ExitCode.NOT_FOUND, str(error))
            if not error.transient:
                raise
            log.problem(str(error))
        else:
            log.rollout(rollout)
            version = version or waiting.wanted_version(rollout)
            outcome = waiting.decide(rollout, options.wait_for, options.paused_ok, version)
            if outcome is not None:
                return outcome
        remaining = deadline - clock()
        if remaining <= 0:
            return waiting.timeout_outcome(rollout, options.timeout_text)
        sleep(min(options.interval.total_seconds(), remaining))
