"""The real binaries some tests run (prometheus, promtool, kubectl, lua5.4, chromium and
chromedriver, go, the control plane), shared by every tier.

`require_binary(name)` returns the binary's path. When it is missing the test is skipped
locally, and fails under CI=true (`.ci/run`), where every real component is required. Every
tier imports it as `support.binaries` (tests/conftest.py puts tests/ on sys.path). kubectl is
the one built with the control plane (`canary_sandbox.k8s_assets`: from $KUBEBUILDER_ASSETS or
the build cache), never whatever kubectl the machine has on PATH.
`require_control_plane()` does the same for the control plane's binaries and CRD files.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import pytest

from canary_sandbox import k8s_assets
from canary_sandbox.prometheus import find_prometheus

BUILD = (
    "build it with `python -m canary_sandbox.k8s_assets` (`./dev test` does), "
    "or set KUBEBUILDER_ASSETS"
)
INSTALL = {
    "prometheus": "install it with `apt-get install prometheus` on Debian",
    "promtool": "install it with `apt-get install prometheus` on Debian (it comes with Prometheus)",
    "kubectl": BUILD,
    "lua5.4": "install it with `apt-get install lua5.4` on Debian",
    "helm": "build it with `python -m canary_sandbox.k8s_assets --helm` (`./dev test` does), "
    "or set CANARY_HELM",
    "chromium": "install it with `apt-get install chromium` on Debian (`./dev test` does)",
    "chromedriver": "install it with `apt-get install chromium-driver` on Debian "
    "(`./dev test` does)",
    "go": "install Go (https://go.dev/dl/, or `apt-get install golang-go` on Debian)",
}


def _helm() -> str | None:
    try:
        return str(k8s_assets.ensure_helm(build=False))
    except k8s_assets.AssetsMissingError:
        return None


def _built(name: str) -> str | None:
    path = k8s_assets.find_binary(name)
    return str(path) if path is not None else None


# Where the code under test has its own lookup, the check asks the same one.
FINDERS: dict[str, Callable[[], str | None]] = {
    "prometheus": find_prometheus,
    "kubectl": lambda: _built("kubectl"),
    "helm": _helm,
}


def _missing(what: str, install: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what}, and CI=true requires it: {install}", pytrace=False)
    pytest.skip(f"{what}: {install}")


def require_binary(name: str) -> str:
    """The path of `name`; skips the test when it is missing, or fails it when CI=true."""
    find = FINDERS.get(name)
    path = find() if find is not None else shutil.which(name)
    if path is not None:
        return path
    _missing(f"{name} is not available", INSTALL.get(name, "install it") + ".")
    raise AssertionError("unreachable")  # pragma: no cover


def require_control_plane() -> k8s_assets.Assets:
    """The control plane's binaries and CRD files (built nothing); skips or fails without them."""
    try:
        return k8s_assets.ensure_assets(build=False)
    except k8s_assets.AssetsMissingError as error:
        _missing("the real control plane is not ready", str(error))
    raise AssertionError("unreachable")  # pragma: no cover
