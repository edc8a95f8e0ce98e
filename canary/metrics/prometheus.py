"""The Prometheus provider of the metrics port: the only module that talks to Prometheus.

`PrometheusClient` runs instant queries with a timeout, bearer or basic auth, and TLS
verification on by default; every failure becomes a typed `MetricsError` whose sentence names
the URL (without credentials) and the fix. `PrometheusSource` measures a Rollout's gates and
turns every such failure into an `error` verdict: it never raises for a Prometheus problem.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import requests
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from urllib3.util.retry import Retry

from canary.common.urls import redacted_url
from canary.core.durations import format_duration
from canary.core.model import Rollout
from canary.core.spec import Gate, PrometheusAuth, PrometheusRef
from canary.core.status import GateResult
from canary.metrics.compare import LiveCounters, measure_compare
from canary.metrics.credentials import read_secret
from canary.metrics.errors import (
    MetricsError,
    PrometheusAuthError,
    PrometheusBadQueryError,
    PrometheusBadResponseError,
    PrometheusHTTPError,
    PrometheusTimeoutError,
    PrometheusTLSError,
    PrometheusUnreachableError,
)
from canary.metrics.promql import (
    Target,
    gate_query,
    request_count_query,
    target_of,
)
from canary.metrics.verdicts import Reading, Series, error_result, judge_reading, single_value

_MAX_ERROR_TEXT = 300
_BAD_QUERY_TYPES = {"bad_data", "execution"}


QueryHook = Callable[[str], None]
"""on_query(outcome): ok, or the error's kind (unreachable, timeout, auth, badquery, ...)."""


class PrometheusClient:
    """Instant queries against one Prometheus described by a `PrometheusRef`."""

    def __init__(
        self,
        ref: PrometheusRef,
        environ: Mapping[str, str] | None = None,
        on_query: QueryHook | None = None,
    ) -> None:
        self.url = redacted_url(ref.url)
        self._on_query = on_query
        self._timeout = ref.timeout.total_seconds()
        self._last_response: requests.Response | None = None
        self._session = self._session_for(ref, os.environ if environ is None else environ)
        self._connection = PrometheusConnect(
            url=ref.url.rstrip("/"),
            session=self._session,
            retry=Retry(total=0, read=False, raise_on_status=False),
            timeout=cast(int, self._timeout),  # typed int, but requests takes float seconds
        )

    def _session_for(self, ref: PrometheusRef, environ: Mapping[str, str]) -> requests.Session:
        session = requests.Session()
        session.verify = tls_verify_setting(ref)
        session.trust_env = False
        session.hooks["response"].append(self._remember)
        if ref.auth is not None:
            apply_auth(session, ref.auth, self.url, environ)
        return session

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last_response = response

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def query(self, promql: str) -> Reading:
        """The instant-vector (or scalar) result of `promql`, evaluated now."""
        try:
            reading = self._query(promql)
        except MetricsError as error:
            self._count(query_outcome(error))
            raise
        self._count("ok")
        return reading

    def _count(self, outcome: str) -> None:
        if self._on_query is not None:
            self._on_query(outcome)

    def _query(self, promql: str) -> Reading:
        self._last_response = None
        try:
            result = self._connection.custom_query(
                promql, params={"timeout": f"{self._timeout:g}s"}
            )
        except PrometheusApiClientException:
            raise self._http_error() from None
        except (ValueError, KeyError, TypeError):  # includes requests' JSONDecodeError
            raise self._bad_response("its answer is not the JSON of the Prometheus API") from None
        except requests.RequestException as error:
            raise self._transport_error(error) from None
        return parse_result(result, self._bad_response)

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> tuple[RangeSeries, ...]:
        """The range-query result of `promql` from `start` to `end` every `step` (backtests)."""
        self._last_response = None
        try:
            result = self._connection.custom_query_range(
                promql, start_time=start, end_time=end, step=f"{step.total_seconds():g}s"
            )
        except PrometheusApiClientException:
            raise self._http_error() from None
        except (ValueError, KeyError, TypeError):
            raise self._bad_response("its answer is not the JSON of the Prometheus API") from None
        except requests.RequestException as error:
            raise self._transport_error(error) from None
        if not isinstance(result, list):
            raise self._bad_response("the result is not a list")
        return tuple(parse_range_series(item, self._bad_response) for item in result)

    def _transport_error(self, error: requests.RequestException) -> MetricsError:
        if isinstance(error, requests.exceptions.SSLError):
            return PrometheusTLSError(
                f"TLS verification failed for Prometheus at {self.url}; set "
                f"spec.prometheus.caFile to the CA that signed its certificate "
                f"(or insecureSkipVerify: true, for testing only)"
            )
        if isinstance(error, requests.Timeout):
            return PrometheusTimeoutError(
                f"Prometheus at {self.url} did not answer within "
                f"{format_duration_seconds(self._timeout)}; check that it is healthy "
                f"or raise spec.prometheus.timeout"
            )
        return PrometheusUnreachableError(
            f"Prometheus at {self.url} is unreachable ({type(error).__name__}); check "
            f"spec.prometheus.url and that Prometheus is running and reachable"
        )

    def _http_error(self) -> MetricsError:
        response = self._last_response
        status = response.status_code if response is not None else 0
        if status in (401, 403):
            return PrometheusAuthError(
                f"Prometheus at {self.url} refused the request with HTTP {status}; "
                f"check the credentials spec.prometheus.auth points to"
            )
        problem = prometheus_error_text(response)
        if problem is not None:
            return PrometheusBadQueryError(
                f"Prometheus at {self.url} rejected the query ({problem}); fix the query"
            )
        return PrometheusHTTPError(
            f"Prometheus at {self.url} answered HTTP {status}; check its health and "
            f"that spec.prometheus.url points to the Prometheus server itself",
            status,
        )

    def _bad_response(self, why: str) -> MetricsError:
        return PrometheusBadResponseError(
            f"Prometheus at {self.url} gave an unexpected answer: {why}; "
            f"check that spec.prometheus.url points to a Prometheus server"
        )


def query_outcome(error: MetricsError) -> str:
    """PrometheusUnreachableError -> unreachable, PrometheusBadQueryError -> badquery, ..."""
    return type(error).__name__.removeprefix("Prometheus").removesuffix("Error").lower() or "error"


def tls_verify_setting(ref: PrometheusRef) -> bool | str:
    """What requests' `verify` gets: False when skipping, the CA file, or True (system CAs)."""
    if ref.insecure_skip_verify:
        return False
    return ref.ca_file or True


def apply_auth(
    session: requests.Session, auth: PrometheusAuth, url: str, environ: Mapping[str, str]
) -> None:
    """Put the credentials of `auth` on `session`; raises CredentialError if unreadable."""
    if auth.bearer_token is not None:
        token = read_secret(auth.bearer_token, f"the bearer token for Prometheus at {url}", environ)
        session.headers["Authorization"] = f"Bearer {token}"
    if auth.basic is not None:
        what = f"the basic-auth {{}} for Prometheus at {url}"
        username = read_secret(auth.basic.username, what.format("username"), environ)
        password = read_secret(auth.basic.password, what.format("password"), environ)
        session.auth = (username, password)


def prometheus_error_text(response: requests.Response | None) -> str | None:
    """Prometheus's own explanation of a rejected query (bad PromQL), or None."""
    if response is None or response.status_code not in (400, 422):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("errorType") not in _BAD_QUERY_TYPES:
        return None
    return f"{body['errorType']}: {str(body.get('error', ''))[:_MAX_ERROR_TEXT]}"


def parse_result(result: object, bad: Callable[[str], MetricsError]) -> Reading:
    """The `data.result` of an instant query as series; a scalar is one series without labels."""
    if not isinstance(result, list):
        raise bad("the result is not a list")
    if len(result) == 2 and not isinstance(result[0], dict):
        return (Series({}, sample_value(result[1], bad)),)
    return tuple(parse_series(item, bad) for item in result)


def parse_series(item: object, bad: Callable[[str], MetricsError]) -> Series:
    if not isinstance(item, dict):
        raise bad("a result element is not an object")
    if "value" not in item:
        raise bad("the query returns a range vector; gates need an instant vector or a scalar")
    labels = item.get("metric", {})
    value = item["value"]
    if not isinstance(labels, dict) or not isinstance(value, list) or len(value) != 2:
        raise bad("a series is malformed")
    return Series({str(k): str(v) for k, v in labels.items()}, sample_value(value[1], bad))


def sample_value(raw: object, bad: Callable[[str], MetricsError]) -> float:
    try:
        return float(str(raw))
    except ValueError:
        raise bad(f"the sample value {json.dumps(str(raw))[:40]} is not a number") from None


@dataclass(frozen=True)
class RangeSeries:
    """One series of a range query: its labels and its (unix time, value) points."""

    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


def parse_range_series(item: object, bad: Callable[[str], MetricsError]) -> RangeSeries:
    if not isinstance(item, dict) or not isinstance(item.get("values"), list):
        raise bad("a range series is malformed")
    labels = item.get("metric", {})
    if not isinstance(labels, dict):
        raise bad("a range series is malformed")
    points = tuple((float(t), sample_value(v, bad)) for t, v in item["values"])
    return RangeSeries({str(k): str(v) for k, v in labels.items()}, points)


def format_duration_seconds(seconds: float) -> str:
    return format_duration(timedelta(seconds=seconds))


# ---------------------------------------------------------------- the port implementation


ClientFactory = Callable[[PrometheusRef], PrometheusClient]


class PrometheusSource:
    """`MetricsSource` backed by Prometheus and Istio's standard metrics."""

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        client_factory: ClientFactory | None = None,
        on_query: QueryHook | None = None,
    ) -> None:
        self._environ = environ
        self._on_query = on_query
        self._client_factory = client_factory or self._default_client

    def _default_client(self, ref: PrometheusRef) -> PrometheusClient:
        return PrometheusClient(ref, self._environ, self._on_query)

    def evaluate(self, rollout: Rollout) -> tuple[GateResult, ...]:
        gates = rollout.spec.analysis.gates
        try:
            client = self._client_factory(rollout.spec.prometheus)
        except MetricsError as error:
            return tuple(error_result(gate, str(error)) for gate in gates)
        with client:
            return measure(client, rollout)


def measure(
    client: PrometheusClient, rollout: Rollout, now: datetime | None = None
) -> tuple[GateResult, ...]:
    """One check of every gate of `rollout`, in spec order (compare gates: since stage start)."""
    target = target_of(rollout)
    gates = rollout.spec.analysis.gates
    count_query = request_count_query(target)
    try:
        requests_seen = request_count(client, count_query)
    except MetricsError as error:
        message = f"counting the canary's requests failed: {error}"
        return tuple(error_result(gate, message, count_query) for gate in gates)
    min_requests = rollout.spec.analysis.min_requests
    at = now or datetime.now(UTC)
    return tuple(
        measure_compare(LiveCounters(client), gate, rollout, at)
        if gate.compare is not None
        else measure_gate(client, gate, target, requests_seen, min_requests)
        for gate in gates
    )


def request_count(client: PrometheusClient, count_query: str) -> float:
    """Requests the canary served in the window; 0 when Prometheus has no series for it."""
    single = single_value(client.query(count_query))
    if single.problem is not None:
        raise PrometheusBadQueryError(single.problem)
    return single.value if single.value is not None else 0.0


def measure_gate(
    client: PrometheusClient, gate: Gate, target: Target, requests_seen: float, min_requests: int
) -> GateResult:
    planned = gate_query(gate, target)
    if planned.query is None:
        return error_result(gate, planned.problem or f"gate {gate.name!r} has no query")
    try:
        reading = client.query(planned.query)
    except MetricsError as error:
        return error_result(gate, f"gate {gate.name!r}: {error}", planned.query)
    return judge_reading(gate, planned.query, reading, requests_seen, min_requests, target.window)
