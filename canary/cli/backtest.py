"""`canary record` and `canary backtest`: try an analysis policy on past metrics.

Imports of the metrics and state-machine code are inside the commands: `--help` stays fast.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from canary.core.model import Rollout
    from canary.core.simulate import Tick
    from canary.metrics.recording import Recording


class BacktestError(Exception):
    """A problem the user can fix; the message is one sentence naming it and the fix."""


def register(app: typer.Typer) -> None:
    app.command("record")(record_command)
    app.command("backtest")(backtest_command)


RolloutOption = Annotated[str, typer.Option("--rollout", help="The Rollout YAML file.")]
PrometheusOption = Annotated[
    str | None, typer.Option("--prometheus", help="Prometheus URL (default: spec.prometheus.url).")
]
FromOption = Annotated[str, typer.Option("--from", help="Start: RFC 3339, unix seconds or now-1h.")]
ToOption = Annotated[str, typer.Option("--to", help="End: RFC 3339, unix seconds or now.")]
StableOption = Annotated[
    str | None,
    typer.Option("--stable-version", help="The live version (default: status.stableVersion)."),
]


def record_command(
    rollout: RolloutOption,
    start: FromOption,
    end: ToOption,
    output: Annotated[str, typer.Option("-o", "--output", help="The recording (JSON) to write.")],
    prometheus: PrometheusOption = None,
    stable_version: StableOption = None,
) -> None:
    try:
        subject = read_rollout(rollout)
        recording = fetch(subject, prometheus, start, end, stable_version)
        with open(output, "w", encoding="utf-8") as file:
            json.dump(recording.to_json(), file)
    except (BacktestError, OSError, ValueError) as error:
        _fail(error)
    series = sum(len(s) for s in [*recording.queries.values(), *recording.counters.values()])
    typer.echo(f"recorded {series} series from {recording.start} to {recording.end} in {output}")


def backtest_command(
    rollout: Annotated[str, typer.Argument(help="The Rollout YAML file (the policy to try).")],
    recording_file: Annotated[
        str | None, typer.Option("--recording", help="A file from `canary record`.")
    ] = None,
    prometheus: Annotated[
        str | None, typer.Option("--prometheus", help="Read straight from this Prometheus.")
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="Start (with --prometheus).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="End (with --prometheus).")] = None,
    stable_version: StableOption = None,
    output: Annotated[str, typer.Option("-o", "--output", help="text or json")] = "text",
    html_file: Annotated[
        str | None,
        typer.Option("--html", help="Also write the report as a web page (charts) to this file."),
    ] = None,
) -> None:
    """Exit codes: 0 the release would have succeeded, 1 rolled back, 2 still running at the end."""
    try:
        subject = read_rollout(rollout)
        recording = _recording_for(subject, recording_file, prometheus, start, end, stable_version)
        ticks = replay_all(recording, subject)
    except (BacktestError, OSError, ValueError) as error:
        _fail(error)
    report = summarise(ticks, recording)
    if html_file is not None:
        _write_page(html_file, report, f"backtest of {rollout}")
    if output == "json":
        typer.echo(json.dumps(report, indent=2))
    else:
        for line in render(report):
            typer.echo(line)
    raise typer.Exit({"Succeeded": 0, "RolledBack": 1}.get(str(report["phase"]), 2))


def _write_page(path: str, report: dict[str, Any], title: str) -> None:
    from canary.cli.backtest_page import page

    text = page(report, title)  # all of it before the file is opened: never half a page
    try:
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as error:
        _fail(BacktestError(f"cannot write {path}: {error.strerror}; choose another --html file"))
    typer.echo(f"wrote the report page to {path}", err=True)


def _fail(error: Exception) -> None:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(1)


def _recording_for(
    subject: Rollout,
    recording_file: str | None,
    prometheus: str | None,
    start: str | None,
    end: str | None,
    stable_version: str | None,
) -> Recording:
    from canary.metrics.recording import load

    if (recording_file is None) == (prometheus is None):
        raise BacktestError("give exactly one of --recording FILE or --prometheus URL")
    if recording_file is not None:
        return load(recording_file)
    if start is None or end is None:
        raise BacktestError("--prometheus needs --from and --to: the span to replay")
    return fetch(subject, prometheus, start, end, stable_version)


def read_rollout(path: str) -> Rollout:
    from pydantic import ValidationError

    from canary.cli.documents import DocumentError, read_one
    from canary.core.errors import describe_validation_error
    from canary.core.model import KIND, Rollout

    try:
        document = read_one(path, KIND)
        return Rollout.model_validate(document.body)
    except DocumentError as error:
        raise BacktestError(str(error)) from None
    except ValidationError as error:
        raise BacktestError(f"{path}: {describe_validation_error(error)[0]}") from None


def fetch(
    subject: Rollout, url: str | None, start: str, end: str, stable_version: str | None
) -> Recording:
    from canary.metrics.errors import MetricsError
    from canary.metrics.prometheus import PrometheusClient
    from canary.metrics.recording import parse_time, record

    stable = stable_version or subject.status.stable_version
    if stable is None:
        raise BacktestError(
            "the Rollout has no status.stableVersion: give the live version with --stable-version"
        )
    ref = subject.spec.prometheus.at(url)
    begin, finish = parse_time(start), parse_time(end)
    if finish <= begin:
        raise BacktestError(f"--to ({finish}) must come after --from ({begin})")
    try:
        with PrometheusClient(ref) as client:
            return record(client, subject, stable, begin, finish)
    except MetricsError as error:
        raise BacktestError(str(error)) from None


def replay_all(recording: Recording, subject: Rollout) -> list[Tick]:
    from canary.metrics.recording import RecordingError, replay

    try:
        return list(replay(recording, subject))
    except RecordingError as error:
        raise BacktestError(str(error)) from None


# ---------------------------------------------------------------- the report


def summarise(ticks: list[Tick], recording: Recording) -> dict[str, Any]:
    """What would have happened: each check, the furthest step, the end and its reason."""
    checks, furthest = [], "nothing"
    for tick in ticks:
        status = tick.decision.status
        before = furthest
        if status.stage is not None:
            furthest = _position(status.stage.value, status.step_index, status.canary_weight)
        if tick.gates is None:
            continue
        checks.append(
            {
                "at": _offset(tick.time, recording),
                "time": tick.time.isoformat(),
                "position": furthest,
                "canaryWeight": status.canary_weight,
                "outcome": _outcome(str(status.phase), moved=furthest != before),
                "gates": [
                    {
                        "name": g.name,
                        "verdict": g.verdict.value,
                        "value": g.value,
                        "threshold": g.threshold,
                        "message": g.message,
                    }
                    for g in tick.gates
                ],
            }
        )
    last = ticks[-1].decision.status if ticks else None
    phase = str(last.phase) if last is not None and last.phase is not None else "Pending"
    return {
        "phase": phase,
        "furthest": furthest,
        "endedAt": _offset(ticks[-1].time, recording) if ticks else None,
        "message": last.message if last is not None else "",
        "checks": checks,
    }


def _outcome(phase: str, moved: bool) -> str:
    """What the policy did after a check: rolled back, promoted (moved on), or held."""
    if phase == "RolledBack":
        return "rollback"
    return "promote" if moved or phase == "Succeeded" else "hold"


def _position(stage: str, step: int, weight: int) -> str:
    return f"split step {step + 1} ({weight}%)" if stage == "split" else stage


def _offset(time: Any, recording: Recording) -> str:
    return f"+{(time - recording.start).total_seconds():.0f}s"


def render(report: dict[str, Any]) -> list[str]:
    lines = []
    for check in report["checks"]:
        gates = ", ".join(_gate_text(g) for g in check["gates"])
        lines.append(f"{check['at']:>7}  {check['position']:<22} {gates}")
    lines.append(verdict_line(report))
    return lines


def verdict_line(report: dict[str, Any]) -> str:
    outcome = {"Succeeded": "would have succeeded", "RolledBack": "would have rolled back"}
    verdict = outcome.get(report["phase"], f"still {report['phase']} at the end of the data")
    return (
        f"{verdict} at {report['endedAt']}; furthest position: {report['furthest']}; "
        f"{report['message']}"
    )


def _gate_text(gate: dict[str, Any]) -> str:
    value = "-" if gate["value"] is None else f"{gate['value']:.4g}"
    return f"{gate['name']} {value} {gate['verdict']}"
