"""`canary wait`: poll one Rollout until the release of one version ends; the exit-code
decisions live in `waiting`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from canary.cli import render, waiting
from canary.cli.errors import UserError
from canary.cli.session import Session, now_utc, read_rollout
from canary.core.objects import Obj


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
