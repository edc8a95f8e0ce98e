"""How Rollouts look on a terminal and in a CI log: plain dicts in, rich renderables or text out.

Pure: no I/O, no clock (`now` is an argument). Objects are dicts as the API serves them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import yaml
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from canary.cli.waiting import is_current_release
from canary.core.durations import human_age
from canary.core.objects import Obj, key_of, metadata_of
from canary.core.shards import Sharding

HISTORY_SHOWN = 5
EVENTS_SHOWN = 10
BAR_WIDTH = 20
NONE = "-"
VERDICT_STYLES = {"pass": "green", "fail": "red", "noData": "yellow", "error": "red"}
PHASE_STYLES = {
    "Succeeded": "green",
    "Progressing": "cyan",
    "Pending": "cyan",
    "Paused": "yellow",
    "RolledBack": "red",
    "Aborted": "red",
    "Invalid": "red",
}


# ---------------------------------------------------------------- documents


def as_json(obj: Obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=False)


def as_yaml(obj: Obj) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)


def as_list(items: Sequence[Obj]) -> Obj:
    """Several objects as kubectl prints them: one v1 List."""
    return {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": list(items)}


# ---------------------------------------------------------------- small values


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age(value: str | None, now: datetime) -> str:
    """kubectl's short human durations: 45s, 5m30s, 42m, 3h10m, 20h, 2d4h, 30d."""
    since = parse_time(value)
    if since is None:
        return NONE
    return human_age(max(0.0, (now - since).total_seconds()))


def weight_bar(weight: int, width: int = BAR_WIDTH) -> str:
    """`█████░░░░░░░░░░░░░░░ 25%`: the canary's share of the traffic."""
    weight = min(100, max(0, weight))
    filled = round(weight * width / 100)
    return f"{'█' * filled}{'░' * (width - filled)} {weight}%"


def number(value: Any) -> str:
    if value is None:
        return NONE
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def count(value: Any) -> str:
    """A number of requests: Prometheus estimates them from rates, so round to a whole one."""
    if not isinstance(value, int | float):
        return NONE
    return f"{round(value):,}"


def styled(value: str, style: str | None) -> Text:
    return Text(value, style=style or "")


def status_of(rollout: Obj) -> Obj:
    status = rollout.get("status")
    return status if isinstance(status, dict) else {}


def split_weights(spec: Obj) -> list[int]:
    split = (spec.get("stages") or {}).get("split") or {}
    if split.get("steps"):
        return [int(w) for w in split["steps"]]
    step, top = split.get("stepWeight"), split.get("maxWeight")
    if not step or not top:
        return []
    weights = list(range(int(step), int(top) + 1, int(step)))
    return weights if weights and weights[-1] == top else [*weights, int(top)]


def step_text(rollout: Obj) -> str:
    """`2 of 5` in the split stage; other stages have no steps a person counts."""
    status = status_of(rollout)
    index = status.get("stepIndex")
    if status.get("stage") == "split":
        weights = split_weights(rollout.get("spec") or {})
        if weights and isinstance(index, int):
            return f"{index + 1} of {len(weights)}"
    return NONE


def phase_text(status: Obj) -> str:
    phase = str(status.get("phase") or "Unknown")
    reason = status.get("pausedReason")
    if phase == "Paused" and reason:
        return f"{phase} ({reason})"
    return waiting_text(phase, status)


def waiting_text(phase: str, status: Obj) -> str:
    """`Pending (waitingForSlot)` for a release the controller's --max-concurrent-releases
    holds back (its message says how many run); any other phase as it is."""
    if phase == "Pending" and status.get("waitingForSlotSince"):
        return f"{phase} (waitingForSlot)"
    return phase


# ---------------------------------------------------------------- the list


def rollout_table(
    rollouts: Iterable[Obj], now: datetime, all_namespaces: bool, sharding: Sharding | None = None
) -> Table:
    """The list; with `sharding` (-o wide, with --shards), each Rollout's shard and the replica
    whose Lease holds it now."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    columns = ["NAME", "PHASE", "STAGE", "WEIGHT", "STABLE", "CANARY", "AGE"]
    if sharding is not None:
        columns += ["SHARD", "HOLDER"]
    for column in ["NAMESPACE", *columns] if all_namespaces else columns:
        table.add_column(column, no_wrap=True)
    for rollout in rollouts:
        cells = table_row(rollout, now)
        if sharding is not None:
            shard, holder = sharding.of(key_of(rollout))
            cells += [f"{shard}/{sharding.shards}", holder or NONE]
        table.add_row(*(cells if all_namespaces else cells[1:]))
    return table


def table_row(rollout: Obj, now: datetime) -> list[str | Text]:
    metadata, status = metadata_of(rollout), status_of(rollout)
    phase = str(status.get("phase") or "")
    return [
        str(metadata.get("namespace", "")),
        str(metadata.get("name", "")),
        styled(waiting_text(phase, status) or NONE, PHASE_STYLES.get(phase)),
        str(status.get("stage") or NONE),
        f"{int(status.get('canaryWeight') or 0)}%",
        str(status.get("stableVersion") or NONE),
        str(status.get("canaryVersion") or NONE),
        age(metadata.get("creationTimestamp"), now),
    ]


# ---------------------------------------------------------------- one Rollout in detail


def rollout_detail(rollout: Obj, events: Sequence[Obj], now: datetime) -> Group:
    parts: list[RenderableType] = [summary(rollout)]
    sections = (
        ("Analysis", analysis_table(rollout)),
        ("Conditions", conditions_table(status_of(rollout), now)),
        ("History", history_table(status_of(rollout), now)),
        ("Events", events_table(events, now)),
    )
    for title, table in sections:
        if table is not None:
            parts.extend([Text(""), Text(title, style="bold"), table])
    return Group(*parts)


def summary(rollout: Obj) -> Table:
    metadata, status = metadata_of(rollout), status_of(rollout)
    spec = rollout.get("spec") or {}
    phase = phase_text(status)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    rows: list[tuple[str, str | Text]] = [
        ("Name", f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"),
        ("Phase", styled(phase, PHASE_STYLES.get(str(status.get("phase"))))),
        ("Stage", str(status.get("stage") or NONE)),
        ("Step", step_text(rollout)),
        ("Canary weight", weight_bar(int(status.get("canaryWeight") or 0))),
        ("Mirror", mirror_text(status)),
        ("Header route", "on" if status.get("headerRoute") else "off"),
        ("Stable", str(status.get("stableVersion") or NONE)),
        ("Canary", canary_text(spec, status)),
        ("Failed checks", failed_checks_text(spec, status)),
        ("Message", str(status.get("message") or NONE)),
    ]
    handled = status.get("handledRequest")
    if isinstance(handled, dict):
        rows.append(("Last request", f"{handled.get('action')}: {handled.get('result')}"))
    for label, value in rows:
        grid.add_row(label, value)
    return grid


def mirror_text(status: Obj) -> str:
    percent = float(status.get("mirrorPercent") or 0)
    return f"{percent:g}% of live traffic copied to the canary" if percent else "off"


def canary_text(spec: Obj, status: Obj) -> str:
    running = status.get("canaryVersion")
    wanted = (spec.get("canary") or {}).get("version")
    if wanted and running and wanted != running:
        return f"{running} (spec asks for {wanted}; not picked up yet)"
    return str(running or wanted or NONE)


def failed_checks_text(spec: Obj, status: Obj) -> str:
    limit = (spec.get("analysis") or {}).get("failureLimit")
    failed = int(status.get("failedChecks") or 0)
    return f"{failed} of {limit} (consecutive)" if limit else str(failed)


def analysis_table(rollout: Obj) -> Table | None:
    record = status_of(rollout).get("lastAnalysis")
    if not isinstance(record, dict) or not record.get("gates"):
        return None
    gates = record["gates"]
    with_samples = any(g.get("samples") is not None for g in gates)
    with_notes = any(g.get("message") for g in gates)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("GATE", "VALUE", "THRESHOLD", "VERDICT"):
        table.add_column(column)
    if with_samples:
        table.add_column("SAMPLES")
    if with_notes:
        table.add_column("NOTE")
    for gate in gates:
        verdict = str(gate.get("verdict", ""))
        cells: list[str | Text] = [
            str(gate.get("name", "")),
            number(gate.get("value")),
            str(gate.get("threshold") or NONE),
            styled(verdict, VERDICT_STYLES.get(verdict)),
        ]
        cells += [count(gate.get("samples"))] if with_samples else []
        cells += [str(gate.get("message") or "")] if with_notes else []
        table.add_row(*cells)
    table.caption = analysis_caption(record)
    table.caption_justify = "left"
    return table


def analysis_caption(record: Obj) -> str:
    outcome = f"checked {record.get('time', '?')}: {record.get('outcome', '?')}"
    counted = record.get("countedAs")
    if counted and counted != record.get("outcome"):
        outcome += f" (counted as {counted})"
    return outcome


def conditions_table(status: Obj, now: datetime) -> Table | None:
    conditions = status.get("conditions") or []
    if not conditions:
        return None
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("TYPE", "STATUS", "REASON", "AGE", "MESSAGE"):
        table.add_column(column)
    for condition in conditions:
        table.add_row(
            str(condition.get("type", "")),
            str(condition.get("status", "")),
            str(condition.get("reason", "")),
            age(condition.get("lastTransitionTime"), now),
            str(condition.get("message") or ""),
        )
    return table


def history_table(status: Obj, now: datetime) -> Table | None:
    history = (status.get("history") or [])[-HISTORY_SHOWN:]
    if not history:
        return None
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("AGE", "PHASE", "STAGE", "STEP", "WEIGHT", "MESSAGE"):
        table.add_column(column)
    for entry in history:
        table.add_row(
            age(entry.get("time"), now),
            str(entry.get("phase", "")),
            str(entry.get("stage") or NONE),
            history_step(entry),
            f"{int(entry.get('canaryWeight') or 0)}%",
            str(entry.get("message") or ""),
        )
    return table


def history_step(entry: Obj) -> str:
    """Split steps count from 1, as `Step 2 of 5` does; other stages have no step to show."""
    step = entry.get("step")
    return str(step + 1) if entry.get("stage") == "split" and isinstance(step, int) else NONE


def event_time(event: Obj) -> str | None:
    for field in ("lastTimestamp", "eventTime", "firstTimestamp"):
        value = event.get(field)
        if value:
            return str(value)
    return (event.get("metadata") or {}).get("creationTimestamp")


def events_table(events: Sequence[Obj], now: datetime) -> Table | None:
    if not events:
        return None
    recent = sorted(events, key=lambda e: parse_time(event_time(e)) or now)[-EVENTS_SHOWN:]
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("LAST SEEN", "TYPE", "REASON", "MESSAGE"):
        table.add_column(column)
    for event in recent:
        kind = str(event.get("type", ""))
        table.add_row(
            age(event_time(event), now),
            styled(kind, "yellow" if kind == "Warning" else None),
            str(event.get("reason", "")),
            str(event.get("message", "")),
        )
    return table


# ---------------------------------------------------------------- CI log lines


def progress_fields(rollout: Obj) -> tuple[str, ...]:
    """What a progress line says, without its time: print a line when this changes."""
    status = status_of(rollout)
    if not is_current_release(rollout) and status.get("phase") != "Invalid":
        wanted = ((rollout.get("spec") or {}).get("canary") or {}).get("version")
        return ("Pending", NONE, "0%", f"waiting for the controller to pick up {wanted}")
    return (
        str(status.get("phase") or "Unknown"),
        str(status.get("stage") or NONE),
        f"{int(status.get('canaryWeight') or 0)}%",
        str(status.get("message") or ""),
    )


def progress_line(rollout: Obj, now: datetime) -> str:
    """`2024-05-01T12:00:03Z  Progressing  split  25%  at split step 2 (25% canary)`."""
    phase, stage, weight, message = progress_fields(rollout)
    return f"{stamp(now)}  {phase:<11}  {stage:<12}  {weight:>4}  {message}".rstrip()


def stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
