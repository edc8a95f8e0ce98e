"""The console scripts' entry point (`canary`, `kubectl-canary`): top-level help without typer.

`canary --help` and `canary -h` print the command list from canary.cli.commands (the same
table the typer app takes its commands' summaries from) and exit 0, importing nothing beyond
that table: typer, rich and click alone take several times Python's own start-up. `canary` with
no arguments prints the same help and exits 2, a usage error, as the typer app's
no_args_is_help always did. Any other arguments, `canary get --help` included, go to the typer
app in canary.cli.app unchanged: its output, standard error and exit codes.
"""

from __future__ import annotations

import os
import sys
import textwrap

from canary.cli.commands import COMMANDS, DESCRIPTION

HELP_OPTIONS = ("-h", "--help")
NO_COMMAND_EXIT_CODE = 2  # click's usage-error code, what `canary` alone has always returned
MAX_WIDTH = 100


def main() -> None:
    arguments = sys.argv[1:]
    if not arguments or (len(arguments) == 1 and arguments[0] in HELP_OPTIONS):
        sys.stdout.write(render_help(program_name(), terminal_width()))
        sys.stdout.flush()
        if not arguments:
            sys.exit(NO_COMMAND_EXIT_CODE)
        return

    sys.argv[1:] = after_the_command(arguments)
    from canary.cli.app import main as typer_main

    typer_main()


# kubectl's connection flags, which people put before the command as kubectl allows.
GLOBAL_OPTIONS = ("--kubeconfig", "--context", "--namespace", "-n")


def after_the_command(arguments: list[str]) -> list[str]:
    """`canary --kubeconfig K get` as `canary get --kubeconfig K`: the connection flags given
    before the command move after it (each command takes them itself)."""
    leading: list[str] = []
    rest = list(arguments)
    while rest and rest[0].startswith("-"):
        flag = rest[0].split("=", 1)[0]
        if flag not in GLOBAL_OPTIONS:
            return arguments
        takes_value = "=" not in rest[0]
        leading += rest[: 2 if takes_value else 1]
        rest = rest[2 if takes_value else 1 :]
    if not rest:
        return arguments
    return [rest[0], *leading, *rest[1:]]


def program_name() -> str:
    return os.path.basename(sys.argv[0]) or "canary"


def terminal_width() -> int:
    """The width to wrap at: $COLUMNS, else the terminal's, else 80; never over MAX_WIDTH."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return min(int(columns), MAX_WIDTH)
    try:
        width = os.get_terminal_size(sys.stdout.fileno()).columns
    except (AttributeError, OSError, ValueError):
        width = 80
    return min(width or 80, MAX_WIDTH)


def render_help(program: str, width: int = 80) -> str:
    """The top-level help, laid out the way click lays out a plain (uncoloured) group help."""
    name_width = max(len(name) for name, _ in COMMANDS)
    indent = 2 + name_width + 2
    lines = [
        f"Usage: {program} [OPTIONS] COMMAND [ARGS]...",
        "",
        *wrap(DESCRIPTION, width, "  ", "  "),
        "",
        "Options:",
        "  -h, --help  Show this message and exit.",
        "",
        "Commands:",
    ]
    for name, summary in COMMANDS:
        lines += wrap(summary, width, f"  {name:<{name_width}}  ", " " * indent)
    footer = f"Run `{program} COMMAND --help` for a command's options and details."
    lines += ["", *wrap(footer, width, "", "")]
    return "\n".join(lines) + "\n"


def wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    """Fill words into lines of at most `width` (a word longer than a line gets its own)."""
    return textwrap.wrap(
        text,
        width,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first.rstrip()]
