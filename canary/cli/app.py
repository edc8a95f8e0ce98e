"""The `canary` command (also the kubectl plugin `kubectl-canary`).

Imports are lazy: a command's `--help` must not pay for the Kubernetes or Prometheus clients.
The top-level help does not come here at all: canary.cli.entry prints it from the command
table in canary.cli.commands, which is also where every command's summary below comes from.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import typer

from canary.cli.commands import COMMANDS, DESCRIPTION
from canary.cli.waiting import WaitFor

app = typer.Typer(
    name="canary",
    help=DESCRIPTION,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Output(StrEnum):
    YAML = "yaml"
    JSON = "json"


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear sentence on standard error and exit; never a traceback."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command("crd")
def crd() -> None:
    from canary.cli.offline import crd_yaml

    typer.echo(crd_yaml(), nl=False)


@app.command("lint")
def lint(
    files: Annotated[list[str], typer.Argument(help="YAML files with Rollouts ('-' = stdin).")],
) -> None:
    """Give the VirtualService, DestinationRule and canary Deployment too (in the same or other
    files) to have them checked as the controller checks them. Warnings (settings that switch
    a protection off) are printed without failing.
    """
    from canary.cli.offline import lint as lint_files
    from canary.cli.offline import problems_only

    lines = lint_files(files)
    for line in lines:
        typer.echo(line, err=True)
    if problems_only(lines):
        raise typer.Exit(1)
    typer.echo(f"ok: {', '.join(files)}")


@app.command("plan")
def plan(
    rollout: Annotated[str, typer.Argument(help="The Rollout YAML file.")],
    virtualservice: Annotated[
        str, typer.Option("--virtualservice", "--vs", help="The VirtualService as it is today.")
    ],
    destinationrule: Annotated[
        str, typer.Option("--destinationrule", "--dr", help="The DestinationRule as it is today.")
    ],
    output: Annotated[Output, typer.Option("-o", "--output")] = Output.YAML,
    version: Annotated[
        str | None,
        typer.Option("--version", help="Plan the release of this version (default: the spec's)."),
    ] = None,
) -> None:
    from canary.cli.documents import DocumentError
    from canary.cli.offline import plan as make_plan
    from canary.cli.offline import render_plan
    from canary.mesh.istio import MeshError

    try:
        steps = make_plan(rollout, virtualservice, destinationrule, version)
    except (DocumentError, MeshError) as error:
        fail(str(error))
    typer.echo(render_plan(steps, output.value))


# ---------------------------------------------------------------- online commands (a cluster)
# Bodies live in canary.cli.session, get, requests and wait, imported inside each command:
# `--help` stays fast.


class Format(StrEnum):
    TABLE = "table"
    WIDE = "wide"  # the list with SHARD and HOLDER (read from the Leases of --shards)
    JSON = "json"
    YAML = "yaml"


NameArgument = Annotated[str, typer.Argument(help="The Rollout's name.")]
NamespaceOption = Annotated[
    str | None,
    typer.Option("-n", "--namespace", help="Namespace (default: the context's, else default)."),
]
AllNamespacesOption = Annotated[
    bool, typer.Option("-A", "--all-namespaces", help="List Rollouts in every namespace.")
]
ContextOption = Annotated[
    str | None, typer.Option("--context", help="The kubeconfig context to use.")
]
KubeconfigOption = Annotated[
    str | None, typer.Option("--kubeconfig", help="Path to the kubeconfig file.")
]
RequestTimeoutOption = Annotated[
    str, typer.Option("--timeout", help="How long to wait for the controller's answer.")
]
NoWaitOption = Annotated[
    bool, typer.Option("--no-wait", help="Write the request and return without waiting.")
]


def run_online(body: Callable[[], int | None]) -> None:
    """Run a command body; a UserError becomes one sentence on stderr and its exit code."""
    from canary.cli.errors import UserError

    try:
        code = body()
    except UserError as error:
        fail(str(error), error.code)
    if code:
        raise typer.Exit(code)


def target_of(
    namespace: str | None,
    context: str | None,
    kubeconfig: str | None,
    all_namespaces: bool = False,
) -> Any:
    from canary.cli.session import Target

    return Target(kubeconfig, context, namespace, all_namespaces)


@app.command("get")
def get(
    *,
    name: Annotated[str | None, typer.Argument(help="A Rollout's name; omit to list.")] = None,
    namespace: NamespaceOption = None,
    all_namespaces: AllNamespacesOption = False,
    context: ContextOption = None,
    kubeconfig: KubeconfigOption = None,
    output: Annotated[Format, typer.Option("-o", "--output")] = Format.TABLE,
    watch: Annotated[
        bool, typer.Option("-w", "--watch", help="Keep updating until the release ends.")
    ] = False,
    lease_namespace: Annotated[
        str,
        typer.Option(
            help="Where the controller's shard Leases are (its --lease-namespace), for -o wide."
        ),
    ] = "canary-system",
) -> None:
    from canary.cli import get as getting
    from canary.cli.session import open_session

    def body() -> None:
        session = open_session(target_of(namespace, context, kubeconfig, all_namespaces))
        printer = getting.Printer(output.value, typer.echo, getting.make_console())
        getting.get(session, name, output.value, watch, printer, lease_namespace)

    run_online(body)


@app.command("dashboard")
def dashboard(
    *,
    namespace: NamespaceOption = None,
    all_namespaces: AllNamespacesOption = False,
    context: ContextOption = None,
    kubeconfig: KubeconfigOption = None,
    port: Annotated[int, typer.Option("--port", help="Port to serve on (0: any free one).")] = 8765,
    address: Annotated[
        str, typer.Option("--address", help="Address to serve on (only this machine by default).")
    ] = "127.0.0.1",
    prometheus: Annotated[
        str | None,
        typer.Option(
            "--prometheus",
            help="Also chart each gate over the release from this Prometheus's range data "
            "(e.g. a port-forward: http://127.0.0.1:9090).",
        ),
    ] = None,
) -> None:
    """Serves the page, its JSON API and a live stream until Ctrl-C, with your kubeconfig's
    credentials (as `get` does), and prints its URL; open that in a browser. The buttons write
    the same request annotation as `canary promote|pause|resume|abort|retry`."""
    from canary.cli.dashboard.server import serve
    from canary.cli.session import open_session

    def body() -> None:
        session = open_session(target_of(namespace, context, kubeconfig, all_namespaces))
        try:
            serve(session, address, port, typer.echo, prometheus)
        except KeyboardInterrupt:
            typer.echo("dashboard stopped")

    run_online(body)


def send(action: str, name: str, target: Any, timeout: str, no_wait: bool) -> None:
    """Send one request to the Rollout `name` at `target` (a `session.Target`)."""
    from canary.cli.errors import UserError, parse_timeout
    from canary.cli.requests import RequestOptions, send_request
    from canary.cli.session import open_session
    from canary.core.requests import Action

    def body() -> int:
        options = RequestOptions(timeout=parse_timeout(timeout), wait=not no_wait)
        session = open_session(target)
        outcome = send_request(session, name, Action(action), options)
        if outcome.code:
            raise UserError(outcome.message, outcome.code)
        typer.echo(outcome.message)
        return 0

    run_online(body)


@app.command("promote")
def promote(
    *,
    name: NameArgument,
    full: Annotated[
        bool, typer.Option("--full", help="Skip the remaining steps: go straight to release.")
    ] = False,
    namespace: NamespaceOption = None,
    context: ContextOption = None,
    kubeconfig: KubeconfigOption = None,
    timeout: RequestTimeoutOption = "10s",
    no_wait: NoWaitOption = False,
) -> None:
    action = "promote-full" if full else "promote"
    send(action, name, target_of(namespace, context, kubeconfig), timeout, no_wait)


def _request_command(action: str) -> Callable[..., None]:
    """A command that sends one request with no options of its own (pause, resume, ...)."""

    def command(
        *,
        name: NameArgument,
        namespace: NamespaceOption = None,
        context: ContextOption = None,
        kubeconfig: KubeconfigOption = None,
        timeout: RequestTimeoutOption = "10s",
        no_wait: NoWaitOption = False,
    ) -> None:
        send(action, name, target_of(namespace, context, kubeconfig), timeout, no_wait)

    return command


for _action in ("pause", "resume", "retry", "abort"):
    app.command(_action)(_request_command(_action))


@app.command("wait")
def wait(
    *,
    name: NameArgument,
    wait_for: Annotated[
        WaitFor,
        typer.Option("--for", help="succeeded: the release is live; paused: at a manual gate."),
    ] = WaitFor.SUCCEEDED,
    timeout: Annotated[str, typer.Option("--timeout", help="Give up after this long.")] = "30m",
    paused_ok: Annotated[
        bool, typer.Option("--paused-ok", help="Exit 0, not 3, when paused for promotion.")
    ] = False,
    interval: Annotated[str, typer.Option("--interval", help="How often to look.")] = "2s",
    version: Annotated[
        str | None,
        typer.Option("--version", help="The version to wait for (default: spec.canary.version)."),
    ] = None,
    namespace: NamespaceOption = None,
    context: ContextOption = None,
    kubeconfig: KubeconfigOption = None,
) -> None:
    """Exit codes:
      0  that version is live (or paused for promotion, with --paused-ok)
      1  its release rolled back, was aborted or superseded, or the Rollout is invalid
      2  timeout
      3  paused, waiting for `canary promote` (a manual gate)
      4  the Rollout does not exist

    The version is --version, else spec.canary.version when the wait starts. Until
    the controller has picked it up, the status still describes the previous
    release: wait keeps waiting instead of reading it.
    """
    from canary.cli.errors import parse_timeout
    from canary.cli.session import open_session
    from canary.cli.wait import ProgressLog, WaitOptions
    from canary.cli.wait import wait as wait_for_version

    def body() -> int:
        options = WaitOptions(
            wait_for=wait_for,
            timeout=parse_timeout(timeout),
            interval=parse_timeout(interval, "--interval"),
            paused_ok=paused_ok,
            timeout_text=timeout,
            version=version,
        )
        session = open_session(target_of(namespace, context, kubeconfig))
        outcome = wait_for_version(session, name, options, ProgressLog(typer.echo))
        typer.echo(outcome.message, err=outcome.code != 0)
        return int(outcome.code)

    run_online(body)


def _register_operations() -> None:
    from canary.cli.ops import register

    register(app)


_register_operations()


def _register_backtesting() -> None:
    from canary.cli.backtest import register

    register(app)


_register_backtesting()


def _summaries_from_table() -> None:
    """Give every command its one-line summary from COMMANDS, the one place summaries are
    written (a command's docstring holds only what its help says after the summary); the two
    must list the same names.

    The fast top-level help (canary.cli.entry) prints COMMANDS without importing this module:
    a command registered here but missing there would be invisible, so that fails at import.
    """
    registered = [info.name for info in app.registered_commands]
    listed = [name for name, _ in COMMANDS]
    if registered != listed:
        raise RuntimeError(
            "canary.cli.commands.COMMANDS must list the registered commands (explicit names, "
            f"same order): registered {registered}, listed {listed}"
        )
    for info, (_, summary) in zip(app.registered_commands, COMMANDS, strict=True):
        details = inspect.getdoc(info.callback) if info.callback is not None else None
        info.short_help = summary
        info.help = f"{summary}\n\n{details}" if details else summary


_summaries_from_table()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
