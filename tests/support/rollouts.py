"""Rollout objects (as plain data) built from examples/ui/rollout.yaml, for the tests of every
tier that apply one to an API server.

- `example_rollout(name, version, namespace)`: the example releasing `version` from its
  Deployment ui-<version>, under another name or namespace.
- `quick_rollout()`: the example releasing v2 with every stage and check 10 s long (a manual
  clock's ticks of 10 s move it one step each).

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


def quick_rollout() -> Obj:
    """examples/ui/rollout.yaml with every stage and check 10 s long."""
    rollout = example_release()
    spec = rollout["spec"]
    spec["analysis"]["interval"] = "10s"
    spec["stages"]["mirror"]["duration"] = "10s"
    spec["stages"]["headerCanary"]["duration"] = "10s"
    spec["stages"]["split"]["interval"] = "10s"
    return rollout
