"""Fixtures of the notification tests: the sandbox with examples/ui, and three receivers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from canary_sandbox.apiserver import ApiServer
from canary_sandbox.client import SandboxClient
from canary_sandbox.receiver import Receiver
from canary_sandbox.stack import sandbox_with_example


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[ApiServer, SandboxClient, Path]]:
    with sandbox_with_example(tmp_path) as (api, client):
        yield api, client, tmp_path / "kubeconfig"


@pytest.fixture
def receivers() -> Iterator[dict[str, Receiver]]:
    with Receiver() as slack, Receiver() as teams, Receiver() as webhook:
        yield {"slack": slack, "teams": teams, "webhook": webhook}
