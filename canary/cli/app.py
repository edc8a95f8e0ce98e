"""The `canary` command (also the kubectl plugin `kubectl-canary`).

Imports are lazy: `canary --help` must not pay for the Kubernetes or Prometheus clients.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, NoReturn

import typer

app = typer.Typer(
    name="canary",
    help="Progressive delivery for Istio: mirror, header canary, weighted split, release.",
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


@app.command()
def crd() -> None:
    """Print the Rollout CustomResourceDefinition (generated from the models)."""
    from canary.cli.offline import crd_yaml

    typer.echo(crd_yaml(), nl=False)


@app.command()
def lint(
    files: Annotated[list[str], typer.Argument(help="YAML files with Rollouts ('-' = stdin).")],
) -> None:
    """Check Rollout files offline: exit 0 when valid, 1 with one line per problem."""
    from canary.cli.offline import lint as lint_files

    problems = lint_files(files)
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"ok: {', '.join(files)}")


@app.command()
def plan(
    rollout: Annotated[str, typer.Argument(help="The Rollout YAML file.")],
    virtualservice: Annotated[
        str, typer.Option("--virtualservice", "--vs", help="The VirtualService as it is today.")
    ],
    destinationrule: Annotated[
        str, typer.Option("--destinationrule", "--dr", help="The DestinationRule as it is today.")
    ],
    output: Annotated[Output, typer.Option("-o", "--output")] = Output.YAML,
) -> None:
    """Print, step by step, the VirtualService and DestinationRule the controller would write."""
    from canary.cli.documents import DocumentError
    from canary.cli.offline import plan as make_plan
    from canary.cli.offline import render_plan
    from canary.mesh.istio import MeshError

    try:
        steps = make_plan(rollout, virtualservice, destinationrule)
    except (DocumentError, MeshError) as error:
        fail(str(error))
    typer.echo(render_plan(steps, output.value))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
