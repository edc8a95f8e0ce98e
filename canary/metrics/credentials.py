"""Credentials for a metrics backend, read from a mounted file or an environment variable.

Values are returned to the caller only; no message ever contains them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from canary.core.spec import SecretValueSource
from canary.metrics.errors import CredentialError


def read_secret(source: SecretValueSource, what: str, environ: Mapping[str, str]) -> str:
    """The value `source` points to, stripped of surrounding whitespace.

    `what` names the credential in the error sentence (e.g. "the bearer token for
    Prometheus at http://prom:9090").
    """
    if source.env is not None:
        return _from_env(source.env, what, environ)
    assert source.file is not None
    return _from_file(source.file, what)


def _from_env(name: str, what: str, environ: Mapping[str, str]) -> str:
    value = environ.get(name)
    if not value or not value.strip():
        raise CredentialError(
            f"{what} is read from environment variable {name}, which is not set or empty; "
            f"set it in the controller's environment or fix spec.prometheus.auth"
        )
    return value.strip()


def _from_file(path: str, what: str) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise CredentialError(
            f"{what} is read from file {path}, which cannot be read ({reason}); "
            f"mount the Secret there or fix spec.prometheus.auth"
        ) from None
    if not value:
        raise CredentialError(
            f"{what} is read from file {path}, which is empty; "
            f"put the credential in the Secret or fix spec.prometheus.auth"
        )
    return value
