"""`canary --help` is fast because it never imports typer: canary.cli.entry prints the command
table. These tests check behaviour, never wall-clock time: the installed console scripts print
every command the typer app has, the fast path imports nothing heavy, and everything else
still reaches the typer app. (The timing itself: benchmarks/scale.py, docs/performance.md.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from canary.cli.app import app
from canary.cli.commands import COMMANDS, DESCRIPTION
from canary.cli.entry import after_the_command, render_help

VENV_BIN = Path(sys.executable).parent
SCRIPTS = ("canary", "kubectl-canary")

# Packages the top-level help must not import: each costs more than Python's own start-up.
HEAVY = (
    "typer",
    "click",
    "rich",
    "shellingham",
    "pydantic",
    "pydantic_core",
    "kubernetes",
    "yaml",
    "structlog",
    "apscheduler",
    "prometheus_client",
    "prometheus_api_client",
)

# Runs a generated console script in-process, the way its shebang would, then reports what was
# imported. Arguments: the packages to look for (JSON), the script, its arguments. The help
# itself goes to stdout; the report is the last line of stdout.
PROBE = """
import json, runpy, sys
watched, script, *arguments = sys.argv[1:]
sys.argv = [script, *arguments]
try:
    runpy.run_path(script, run_name="__main__")
    code = 0
except SystemExit as exit:
    code = 0 if exit.code is None else exit.code
heavy = set(json.loads(watched))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy or m == "canary.cli.app")
sys.stdout.flush()
print()
print(json.dumps({"code": code, "loaded": loaded}))
"""


def script(name: str) -> Path:
    path = VENV_BIN / name
    assert path.exists(), f"{path} is missing: run `.venv/bin/pip install -e '.[dev]' --no-deps`"
    return path


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def probe(name: str, *arguments: str) -> dict[str, object]:
    completed = run(sys.executable, "-c", PROBE, json.dumps(HEAVY), script(name), *arguments)
    assert completed.stdout, completed.stderr
    report: dict[str, object] = json.loads(completed.stdout.splitlines()[-1])
    return report


def flat(text: str) -> str:
    return " ".join(text.split())


def typer_commands() -> dict[str, str | None]:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return {name: command.short_help for name, command in group.commands.items()}


# ---------------------------------------------------------------- one source of truth


def test_the_typer_app_registers_exactly_the_table_with_its_summaries() -> None:
    assert list(typer_commands().items()) == list(COMMANDS)


def test_the_typer_help_lists_the_table() -> None:
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for name, summary in COMMANDS:
        assert f"{name} {summary}" in flat(result.output.replace("│", " "))


# ---------------------------------------------------------------- the fast path


@pytest.mark.parametrize("name", SCRIPTS)
@pytest.mark.parametrize("option", ["--help", "-h"])
def test_console_script_help_lists_every_command(name: str, option: str) -> None:
    completed = run(script(name), option)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    output = completed.stdout
    assert output.startswith(f"Usage: {name} [OPTIONS] COMMAND [ARGS]...\n")
    assert flat(DESCRIPTION) in flat(output)
    assert f"Run `{name} COMMAND --help`" in output
    for command, summary in typer_commands().items():
        assert f"{command} {summary}" in flat(output), command


def test_console_script_without_arguments_prints_help_and_exits_2_like_typer() -> None:
    typer_result = CliRunner().invoke(app, [])
    completed = run(script("canary"))
    assert (completed.returncode, typer_result.exit_code) == (2, 2)
    assert completed.stdout == render_help("canary")
    assert completed.stderr == ""


@pytest.mark.parametrize("name", SCRIPTS)
@pytest.mark.parametrize("arguments", [["--help"], ["-h"], []])
def test_fast_help_imports_nothing_heavy(name: str, arguments: list[str]) -> None:
    report = probe(name, *arguments)
    assert report == {"code": 2 if not arguments else 0, "loaded": []}


def test_the_probe_sees_typer_when_it_is_imported() -> None:
    report = probe("canary", "get", "--help")
    assert report["code"] == 0
    loaded = report["loaded"]
    assert isinstance(loaded, list)
    assert {"typer", "rich", "canary.cli.app"} <= set(loaded)


def test_help_wraps_to_the_width_and_keeps_every_word() -> None:
    for width in (60, 80, 100):
        text = render_help("canary", width)
        assert max(len(line) for line in text.splitlines()) <= width
        for name, summary in COMMANDS:
            assert f"{name} {summary}" in flat(text)


# ---------------------------------------------------------------- everything else: typer


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_command_help_goes_to_typer(name: str) -> None:
    completed = run(script(name), "get", "--help")
    assert completed.returncode == 0, completed.stderr
    assert f"Usage: {name} get [OPTIONS]" in flat(completed.stdout)
    assert "--all-namespaces" in completed.stdout  # only typer's help of `get` has options


def test_help_with_more_arguments_goes_to_typer() -> None:
    completed = run(script("canary"), "--help", "get")
    assert completed.returncode == 0, completed.stderr
    assert "Commands" in completed.stdout
    assert "Run `canary COMMAND --help`" not in completed.stdout


def test_an_unknown_command_is_typer_usage_error() -> None:
    completed = run(script("canary"), "no-such-command")
    assert completed.returncode == 2
    assert "No such command 'no-such-command'" in completed.stderr
    assert completed.stdout == ""


def test_a_failing_command_keeps_its_exit_code_and_stderr(tmp_path: Path) -> None:
    broken = tmp_path / "rollout.yaml"
    broken.write_text("kind: Rollout\n")
    completed = run(script("canary"), "lint", broken)
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert completed.stderr.strip()


@pytest.mark.parametrize(
    ("given", "passed"),
    [
        (["--kubeconfig", "K", "get"], ["get", "--kubeconfig", "K"]),
        (
            ["--kubeconfig=K", "-n", "shop", "wait", "ui"],
            ["wait", "--kubeconfig=K", "-n", "shop", "ui"],
        ),
        (
            ["--context", "c", "promote", "ui", "--full"],
            ["promote", "--context", "c", "ui", "--full"],
        ),
        (["get", "--kubeconfig", "K"], ["get", "--kubeconfig", "K"]),
        (["--verbose", "get"], ["--verbose", "get"]),  # not ours to move: typer says so
    ],
)
def test_kubectl_style_connection_flags_before_the_command(
    given: list[str], passed: list[str]
) -> None:
    """Issue 14: `kubectl-canary --kubeconfig K get` failed (flags only after the command)."""
    assert after_the_command(given) == passed


def test_a_kubeconfig_before_the_command_reaches_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    completed = run(script("kubectl-canary"), "--kubeconfig", missing, "get")
    assert completed.returncode == 1
    assert f"kubeconfig {missing} does not exist" in completed.stderr
