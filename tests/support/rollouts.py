"""Rollout objects (as plain data) built from examples/ui/rollout.yaml, for the tests of every
tier that apply one to an API server.

- `example_rollout(name, version, namespace)`: the example releasing `version` from its
  Deployment ui-<version>, under another name or namespace.
- `quick_rollout()`: the example releasing v2 with every stage and check 10 s long (a manual
  clock's ticks of 10 s move it one step each); or as long as `check`, `stage` and `settle` say.

Builders of `canary.core.model.Rollout` objects for one tier stay in it (tests/core's
core_helpers, tests/analysis's and tests/metrics's gated Rollouts).
"""

from __future__ import annotations

from typing import Any

from canary_sandbox.stack import NAMESPACE, example_release

Obj = dict[str, Any]


def example_rollout(name: str = "ui", version: str = "v2", namespace: str = NAMESPACE) -> Obj:
    obj = example_release(version)
    obj["metadata"]["name"] = name
    obj["metadata"]["namespace"] = namespace
    return obj


def quick_rollout(check: str = "10s", stage: str = "10s", settle: str | None = None) -> Obj:
    """examples/ui/rollout.yaml with every check `check` long, the mirror, header canary and
    split steps `stage` long, and (given) a promotion settle delay of `settle`."""
    rollout = example_release()
    spec = rollout["spec"]
    spec["analysis"]["interval"] = check
    spec["stages"]["mirror"]["duration"] = stage
    spec["stages"]["headerCanary"]["duration"] = stage
    spec["stages"]["split"]["interval"] = stage
    if settle is not None:
        spec["promotion"]["settleDelay"] = settle
    return rollout
