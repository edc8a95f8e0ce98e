"""The real binaries some tests run (prometheus, promtool, kubectl, go), shared by every tier.

`require_binary(name)` returns the binary's path. When it is missing the test is skipped
locally, and fails under CI=true (`.ci/run`), where every real component is required. Each tier
imports it as it imports its own `<tier>_support` modules (tests/conftest.py puts tests/ on
sys.path).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import pytest

from canary.sandbox.prometheus import find_prometheus

INSTALL = {
    "prometheus": "install it with `apt-get install prometheus` on Debian",
    "promtool": "install it with `apt-get install prometheus` on Debian (it comes with Prometheus)",
    "kubectl": "install it from https://kubernetes.io/docs/tasks/tools/",
    "go": "install Go (https://go.dev/dl/, or `apt-get install golang-go` on Debian)",
}
# Where the code under test has its own lookup, the check asks the same one.
FINDERS: dict[str, Callable[[], str | None]] = {"prometheus": find_prometheus}


def require_binary(name: str) -> str:
    """The path of `name`; skips the test when it is missing, or fails it when CI=true."""
    find = FINDERS.get(name)
    path = find() if find is not None else shutil.which(name)
    if path is not None:
        return path
    install = INSTALL.get(name, "install it")
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is not on PATH, and CI=true requires it: {install}.", pytrace=False)
    pytest.skip(f"{name} is not on PATH ({install})")
