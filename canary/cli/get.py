"""`canary get`: list Rollouts or show one, once or watching (rendering lives in `render`)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from canary.cli import render, waiting
from canary.cli.errors import UserError
from canary.cli.session import Session, explained, now_utc, read_rollout
from canary.core.model import KIND
from canary.core.objects import Obj, key_of, metadata_of, resource_version
from canary.core.shards import SHARD_PREFIX, Sharding, sharding_seen
from canary.kube.leases import view
from canary.kube.port import KubeError


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


TABLES = ("table", "wide")  # -o wide: the table, with each Rollout's shard and its holder


def get(
    session: Session,
    name: str | None,
    output: str,
    watch: bool,
    printer: Printer,
    lease_namespace: str = "canary-system",
) -> None:
    if name is not None and session.all_namespaces:
        raise UserError("a Rollout cannot be read by name across all namespaces: drop -A")
    if name is None:
        get_list(session, output, watch, printer, lease_namespace)
    else:
        get_one(session, name, "table" if output == "wide" else output, watch, printer)


def list_namespace(session: Session) -> str | None:
    return None if session.all_namespaces else session.namespace


def get_list(
    session: Session, output: str, watch: bool, printer: Printer, lease_namespace: str
) -> None:
    with explained(session, "list"):
        rollouts = session.cluster.list_rollouts(list_namespace(session))
    rollouts = sorted(rollouts, key=key_of)
    if output not in TABLES and not watch:
        printer.document(render.as_list(rollouts))
        return
    show_list(session, rollouts, output, printer, lease_namespace)
    if watch:
        watch_list(session, {key_of(r): r for r in rollouts}, output, printer, lease_namespace)


def sharding(session: Session, lease_namespace: str) -> Sharding | None:
    """What the shard Leases of `--shards` say now; None when the controller is not sharded."""
    try:
        leases = session.cluster.list_leases(lease_namespace, SHARD_PREFIX)
    except KubeError as error:
        raise UserError(
            f"cannot read the shard Leases in namespace {lease_namespace} ({error}): pass the "
            "controller's --lease-namespace, or get list permission on leases there"
        ) from None
    return sharding_seen([view(lease) for lease in leases], now_utc())


def show_list(
    session: Session,
    rollouts: list[Obj],
    output: str,
    printer: Printer,
    lease_namespace: str = "canary-system",
) -> None:
    if output not in TABLES:
        for rollout in rollouts:
            printer.document(rollout)
        return
    if not rollouts:
        where = "any namespace" if session.all_namespaces else f"namespace {session.namespace}"
        printer.echo(f"No Rollouts found in {where}.")
        return
    shards = sharding(session, lease_namespace) if output == "wide" else None
    printer.show(render.rollout_table(rollouts, now_utc(), session.all_namespaces, shards))


def watch_list(
    session: Session,
    known: dict[str, Obj],
    output: str,
    printer: Printer,
    lease_namespace: str = "canary-system",
) -> None:
    """kubectl get -w: print the table again (or the changed object) after every change."""
    for event_type, obj in rollout_changes(session, None):
        if obj is None:
            continue
        if event_type == "DELETED":
            known.pop(key_of(obj), None)
        else:
            known[key_of(obj)] = obj
        if output in TABLES:
            show_list(session, sorted(known.values(), key=key_of), output, printer, lease_namespace)
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


def detail(session: Session, rollout: Obj) -> Any:
    return render.rollout_detail(rollout, read_events(session, rollout), now_utc())


def read_events(session: Session, rollout: Obj) -> list[Obj]:
    """Recent Events of this Rollout object; none (rather than an error) when they cannot be
    read. Events outlive their object (an hour by default on kube-apiserver), so the name is
    not enough: an earlier Rollout of that name, or a Service named like it, has its own."""
    metadata = metadata_of(rollout)
    name, uid = str(metadata.get("name", "")), metadata.get("uid")
    try:
        events = session.cluster.list_events(session.namespace, name)
    except (KubeError, OSError):
        return []
    return [event for event in events if _about(event.get("involvedObject") or {}, uid)]


def _about(involved: Obj, uid: object) -> bool:
    """Whether an Event's involvedObject is the Rollout with this uid (an Event that names
    no uid is taken by kind and name)."""
    return bool(involved.get("kind") == KIND and involved.get("uid", uid) == uid)


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


def rollout_changes(
    session: Session, name: str | None, stop: threading.Event | None = None
) -> Iterator[tuple[str, Obj | None]]:
    """(type, object) for every change in the namespace (or only to `name`); SYNC is unfolded.
    Setting `stop` (a long-running reader's, e.g. the dashboard's) ends the watch."""
    stop = stop or threading.Event()
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
