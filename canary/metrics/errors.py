"""Typed failures of a metrics backend. Each carries one sentence that names the backend's URL
(never its credentials) and the fix; the adapter turns them into `error` verdicts."""

from __future__ import annotations


class MetricsError(Exception):
    """A metrics backend could not answer a query; str(error) is the user-facing sentence."""


class PrometheusUnreachableError(MetricsError):
    """No connection could be made (refused, DNS, network)."""


class PrometheusTimeoutError(MetricsError):
    """Prometheus did not answer within spec.prometheus.timeout."""


class PrometheusTLSError(MetricsError):
    """The TLS handshake or certificate verification failed."""


class PrometheusAuthError(MetricsError):
    """Prometheus (or the proxy in front of it) answered 401 or 403."""


class PrometheusHTTPError(MetricsError):
    """Any other HTTP status that is not 200."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class PrometheusBadQueryError(MetricsError):
    """Prometheus rejected the PromQL (bad_data) or could not execute it."""


class PrometheusBadResponseError(MetricsError):
    """The answer was not the JSON the Prometheus HTTP API documents."""


class CredentialError(MetricsError):
    """A credential named in spec.prometheus.auth could not be read."""
