"""The online CLI tests run on both API servers: every test that takes the `sandbox` fixture
(test_online_sandbox.py) runs once on the sandbox and once on the real control plane, unless
it is marked `sandbox_only` (it needs a handle only the sandbox has; the mark says which)."""

from __future__ import annotations

import pytest


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sandbox" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sandbox_only") is not None
        metafunc.parametrize(
            "sandbox", ("sandbox",) if only else ("sandbox", "real"), indirect=True
        )
