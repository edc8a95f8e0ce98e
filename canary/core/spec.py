"""What a Rollout asks for (`spec`): the service's mesh objects, the stages, the gates, the
promotion policy, notifications. Validation messages name the field path and the fix;
`canary lint` and the controller show them as they are."""

from __future__ import annotations

import ipaddress
import itertools
import math
from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from canary.core.durations import Duration, IntervalDuration, PositiveDuration
from canary.core.wire import DNS_LABEL, LABEL_KEY, LABEL_VALUE, MAX_ITEMS, MAX_QUERY, WireModel, cel

# ---------------------------------------------------------------- traffic matches (Istio)


class StringMatch(WireModel):
    """Istio's StringMatch: exactly one of exact, prefix or regex."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            ("[has(self.exact), has(self.prefix), has(self.regex)].filter(k, k).size() == 1",
             "a string match takes exactly one of exact, prefix or regex"),
        )
    )  # fmt: skip

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [v for v in (self.exact, self.prefix, self.regex) if v is not None]
        if len(given) != 1:
            raise ValueError("a string match takes exactly one of exact, prefix or regex")
        return self


class MatchRequest(WireModel):
    """A subset of Istio's HTTPMatchRequest, plus `clientIP` for "canary for one client".

    `clientIP: 1.2.3.4` matches requests whose X-Forwarded-For starts with that address
    (the original client, whatever proxies appended after it).
    """

    model_config = ConfigDict(
        json_schema_extra=cel(
            ("(has(self.headers) && size(self.headers) > 0)"
             " || (has(self.withoutHeaders) && size(self.withoutHeaders) > 0)"
             " || (has(self.queryParams) && size(self.queryParams) > 0)"
             " || (has(self.sourceLabels) && size(self.sourceLabels) > 0)"
             " || has(self.uri) || has(self.scheme) || has(self.method) || has(self.authority)"
             " || has(self.sourceNamespace) || has(self.clientIP)",
             "an empty match would send every request to the canary: "
             "give headers, uri, clientIP or another condition"),
        )
    )  # fmt: skip

    name: str | None = None
    headers: dict[str, StringMatch] | None = Field(default=None, max_length=MAX_ITEMS)
    without_headers: dict[str, StringMatch] | None = Field(default=None, max_length=MAX_ITEMS)
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    query_params: dict[str, StringMatch] | None = Field(default=None, max_length=MAX_ITEMS)
    ignore_uri_case: bool | None = None
    source_labels: dict[str, str] | None = Field(default=None, max_length=MAX_ITEMS)
    source_namespace: str | None = None
    client_ip: str | None = Field(
        default=None,
        alias="clientIP",
        pattern=r"^[0-9a-fA-F:.]+$",
        description="Route requests whose X-Forwarded-For starts with this client address.",
    )

    @field_validator("client_ip", mode="before")
    @classmethod
    def _one_address(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value  # None, or a type error that pydantic reports itself
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(
                f"clientIP {value!r} is not one address: give an IPv4 or IPv6 address "
                "such as 203.0.113.7"
            ) from None
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        # A name or ignoreUriCase selects nothing, and neither does an empty map.
        conditions = (v for k, v in self if k not in ("name", "ignore_uri_case"))
        if not any(v is not None and v != {} for v in conditions):
            raise ValueError(
                "an empty match would send every request to the canary: "
                "give headers, uri, clientIP or another condition"
            )
        return self


# ---------------------------------------------------------------- spec


class NoDataPolicy(StrEnum):
    HOLD = "hold"
    FAIL = "fail"
    PASS = "pass"


class Stage(StrEnum):
    """Where a release is: waiting for its canary to be ready, then the four release stages."""

    WAITING = "waiting"  # for the canary workload to be ready
    MIRROR = "mirror"
    HEADER_CANARY = "headerCanary"
    SPLIT = "split"
    RELEASE = "release"

    def __repr__(self) -> str:  # what validation messages show: 'mirror', not <Stage.MIRROR: ...>
        return repr(self.value)


ReleaseStage = Literal[Stage.MIRROR, Stage.HEADER_CANARY, Stage.SPLIT, Stage.RELEASE]
"""A stage a user names (in `manualBefore`, a webhook's `stage`): any but waiting."""

# The two steps of the release stage: the canary takes all the traffic, then the stable subset
# is moved to the new version (and, once settled, the stable subset takes it all back).
RELEASE_CANARY_FULL, RELEASE_SUBSET_MOVED = 0, 1


class VirtualServiceRef(WireModel):
    name: str = Field(pattern=DNS_LABEL)
    route: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "The name of the http route to steer; leave it out when the VirtualService has "
            "exactly one http route to spec.host."
        ),
    )


class DestinationRuleRef(WireModel):
    name: str = Field(pattern=DNS_LABEL)


SUBSET = Field(
    min_length=1,
    max_length=63,
    pattern=DNS_LABEL,
    description="A DestinationRule subset name: lower-case letters, digits and '-' (Istio).",
)


class StableRef(WireModel):
    subset: str = SUBSET


class WorkloadRef(WireModel):
    api_version: str = "apps/v1"
    kind: Literal["Deployment"] = "Deployment"
    name: str = Field(pattern=DNS_LABEL)


class CanaryRef(WireModel):
    subset: str = SUBSET
    version: str = Field(min_length=1, max_length=63, pattern=LABEL_VALUE)
    workload_ref: WorkloadRef | None = None
    ready_timeout: PositiveDuration = Field(
        default=timedelta(minutes=10),
        description="How long to wait for the canary workload to be ready before failing.",
    )


class MirrorStage(WireModel):
    percent: float = Field(default=100.0, gt=0, le=100)
    duration: PositiveDuration = timedelta(minutes=1)


class HeaderCanaryStage(WireModel):
    match: list[MatchRequest] = Field(min_length=1, max_length=MAX_ITEMS)
    duration: PositiveDuration = timedelta(minutes=1)


class SplitStage(WireModel):
    model_config = ConfigDict(
        json_schema_extra=cel(
            ("has(self.steps) != (has(self.stepWeight) || has(self.maxWeight))",
             "give exactly one of steps (e.g. [10, 25, 50, 75, 100]) or stepWeight with "
             "maxWeight"),
            ("has(self.stepWeight) == has(self.maxWeight)",
             "stepWeight and maxWeight go together: give both"),
            ("!has(self.stepWeight) || !has(self.maxWeight) || self.stepWeight <= self.maxWeight",
             "stepWeight must not exceed maxWeight"),
        )
    )  # fmt: skip

    steps: list[int] | None = Field(
        default=None,
        # The schema the API server checks; `_steps_increase` gives the same rules in words.
        json_schema_extra={
            "items": {"type": "integer", "minimum": 1, "maximum": 100},
            "minItems": 1,
            "maxItems": 100,
            **cel(
                ("self.isSorted() && self.all(w, self.exists_one(x, x == w))",
                 "steps must strictly increase, e.g. [10, 25, 50, 75, 100]"),
            ),
        },
    )  # fmt: skip
    step_weight: int | None = Field(default=None, ge=1, le=100)
    max_weight: int | None = Field(default=None, ge=1, le=100)
    interval: PositiveDuration = timedelta(minutes=1)

    @model_validator(mode="after")
    def _one_way_to_give_steps(self) -> Self:
        by_steps = self.steps is not None
        by_weight = self.step_weight is not None or self.max_weight is not None
        if by_steps == by_weight:
            raise ValueError(
                "give exactly one of steps (e.g. [10, 25, 50, 75, 100]) "
                "or stepWeight with maxWeight"
            )
        if by_weight and (self.step_weight is None or self.max_weight is None):
            raise ValueError("stepWeight and maxWeight go together: give both")
        if (
            self.step_weight is not None
            and self.max_weight is not None
            and self.step_weight > self.max_weight
        ):
            raise ValueError("stepWeight must not exceed maxWeight")
        return self

    @field_validator("steps")
    @classmethod
    def _steps_increase(cls, steps: list[int] | None) -> list[int] | None:
        if steps is None:
            return None
        if not steps:
            raise ValueError("steps must list at least one weight, e.g. [10, 25, 50, 75, 100]")
        if any(not 1 <= s <= 100 for s in steps):
            raise ValueError("every step is a canary weight from 1 to 100")
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError(f"steps must strictly increase, got {steps}")
        return steps

    def weights(self) -> list[int]:
        """The canary weight of each step, in order."""
        if self.steps is not None:
            return list(self.steps)
        assert self.step_weight is not None and self.max_weight is not None
        weights = list(range(self.step_weight, self.max_weight + 1, self.step_weight))
        if weights[-1] != self.max_weight:
            weights.append(self.max_weight)
        return weights


class Stages(WireModel):
    model_config = ConfigDict(
        json_schema_extra=cel(
            ("has(self.mirror) || has(self.headerCanary) || has(self.split)",
             "give at least one stage: mirror, headerCanary or split"),
        )
    )  # fmt: skip

    mirror: MirrorStage | None = None
    header_canary: HeaderCanaryStage | None = None
    split: SplitStage | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Self:
        if self.mirror is None and self.header_canary is None and self.split is None:
            raise ValueError("give at least one stage: mirror, headerCanary or split")
        return self


class SuccessRateGate(WireModel):
    min: float = Field(ge=0, le=100, description="Lowest acceptable non-5xx share, in percent.")


class LatencyGate(WireModel):
    quantile: float = Field(gt=0, lt=1)
    max_ms: float = Field(gt=0)


class CompareMetric(StrEnum):
    ERROR_RATE = "errorRate"
    LATENCY = "latency"


class CompareGate(WireModel):
    """The canary judged against the stable version by a sequential test (docs/analysis.md)."""

    against: str = Field(default="stable", description="The baseline: only stable for now.")
    metric: CompareMetric
    max_increase: float = Field(
        ge=0,
        le=10_000,
        description="How much worse than stable the canary may be, in percent of stable's "
        "value: 50 allows 1.5 times stable's error rate or latency quantile.",
    )
    confidence: float = Field(default=0.99, ge=0.5, lt=1)
    quantile: float | None = Field(
        default=None, gt=0, lt=1, description="metric latency only: the quantile (0.99)."
    )

    @field_validator("against")
    @classmethod
    def _against_stable(cls, value: str) -> str:
        if value != "stable":
            raise ValueError(f"against {value!r} is not a baseline: set against: stable")
        return value

    @model_validator(mode="after")
    def _quantile_for_latency(self) -> Self:
        if self.quantile is not None and self.metric is not CompareMetric.LATENCY:
            raise ValueError("quantile belongs to metric latency: remove it or set metric: latency")
        return self

    def latency_quantile(self) -> float:
        return self.quantile if self.quantile is not None else 0.99


class Gate(WireModel):
    model_config = ConfigDict(
        json_schema_extra=cel(
            ("[has(self.successRate), has(self.latency), has(self.query), has(self.compare)]"
             ".filter(k, k).size() == 1",
             "a gate takes exactly one of successRate, latency, query or compare"),
            ("!has(self.query) || has(self.min) || has(self.max)",
             "a query gate needs a threshold: give min, max or both"),
            ("has(self.query) || (!has(self.min) && !has(self.max))",
             "min and max belong to query gates only"),
        )
    )  # fmt: skip

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL)
    success_rate: SuccessRateGate | None = None
    latency: LatencyGate | None = None
    query: str | None = Field(default=None, min_length=1, max_length=MAX_QUERY)
    compare: CompareGate | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        kinds = [
            k for k in (self.success_rate, self.latency, self.query, self.compare) if k is not None
        ]
        if len(kinds) != 1:
            raise ValueError("a gate takes exactly one of successRate, latency, query or compare")
        if self.query is not None and self.min is None and self.max is None:
            raise ValueError("a query gate needs a threshold: give min, max or both")
        if self.query is None and (self.min is not None or self.max is not None):
            raise ValueError("min and max belong to query gates only")
        for bound in (self.min, self.max):
            if bound is not None and not math.isfinite(bound):
                raise ValueError("thresholds must be finite numbers")
        return self

    @property
    def kind(self) -> str:
        if self.success_rate is not None:
            return "successRate"
        if self.latency is not None:
            return "latency"
        if self.compare is not None:
            return "compare"
        return "query"


class WebhookType(StrEnum):
    PRE_STAGE = "pre-stage"
    GATE = "gate"
    CONFIRM_PROMOTION = "confirm-promotion"
    POST_RELEASE = "post-release"


BOUNDARY_WEBHOOKS = (WebhookType.PRE_STAGE, WebhookType.CONFIRM_PROMOTION)
MAX_WEBHOOK_TIMEOUT = timedelta(seconds=60)


class WebhookCheck(WireModel):
    """An HTTP POST to the user's system: a check, a hold before a stage, or a notice after.

    pre-stage and confirm-promotion run before `stage` starts (while the previous stage's
    traffic is still in place); gate runs at every analysis; post-release after the release.
    """

    model_config = ConfigDict(
        json_schema_extra=cel(
            ("(self.type == 'pre-stage' || self.type == 'confirm-promotion') == has(self.stage)",
             "pre-stage and confirm-promotion webhooks need the stage they run before (mirror, "
             "headerCanary, split or release); the other types take no stage"),
        )
    )  # fmt: skip

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL)
    type: WebhookType
    url: str = Field(pattern=r"^https?://")
    stage: ReleaseStage | None = Field(
        default=None, description="For pre-stage and confirm-promotion: the stage it precedes."
    )
    timeout: PositiveDuration = timedelta(seconds=5)
    metadata: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _stage_where_needed(self) -> Self:
        if self.type in BOUNDARY_WEBHOOKS and self.stage is None:
            raise ValueError(
                f"webhook {self.name!r} of type {self.type.value} needs the stage it runs "
                "before: give stage (mirror, headerCanary, split or release)"
            )
        if self.type not in BOUNDARY_WEBHOOKS and self.stage is not None:
            raise ValueError(
                f"webhook {self.name!r}: stage belongs to pre-stage and confirm-promotion only"
            )
        if not timedelta(0) < self.timeout <= MAX_WEBHOOK_TIMEOUT:
            raise ValueError(f"webhook {self.name!r}: timeout must be between 0s and 60s")
        return self


class Analysis(WireModel):
    model_config = ConfigDict(
        json_schema_extra=cel(
            ("self.gates.all(g, self.gates.filter(h, h.name == g.name).size() == 1)"
             " && (!has(self.webhooks) || self.webhooks.all(w,"
             " !self.gates.exists(g, g.name == w.name)"
             " && self.webhooks.filter(v, v.name == w.name).size() == 1))",
             "every gate and webhook needs a name of its own"),
        )
    )  # fmt: skip

    interval: IntervalDuration = timedelta(seconds=30)
    window: PositiveDuration | None = Field(
        default=None,
        description="Range of the PromQL rate windows; default 1m, never below interval.",
    )
    failure_limit: int = Field(default=2, ge=1)
    min_requests: int = Field(default=50, ge=0)
    no_data: NoDataPolicy = NoDataPolicy.HOLD
    gates: list[Gate] = Field(min_length=1, max_length=MAX_ITEMS)
    webhooks: list[WebhookCheck] = Field(default_factory=list, max_length=MAX_ITEMS)

    @field_validator("interval")
    @classmethod
    def _interval_at_least_a_second(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("the analysis interval must be at least 1s")
        return value

    @field_validator("gates")
    @classmethod
    def _unique_names(cls, gates: list[Gate]) -> list[Gate]:
        seen: set[str] = set()
        for gate in gates:
            if gate.name in seen:
                raise ValueError(f"gate name {gate.name!r} is used twice: give each gate its own")
            seen.add(gate.name)
        return gates

    @model_validator(mode="after")
    def _unique_check_names(self) -> Self:
        names = [g.name for g in self.gates] + [w.name for w in self.webhooks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(
                f"{twice[0]!r} names more than one gate or webhook: give each its own name"
            )
        return self

    def webhooks_of(self, type_: WebhookType) -> list[WebhookCheck]:
        return [w for w in self.webhooks if w.type is type_]

    def effective_window(self) -> timedelta:
        return max(self.window or timedelta(minutes=1), self.interval)


class SecretValueSource(WireModel):
    """Where a credential comes from: a file (a mounted Secret) or an environment variable."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            ("has(self.file) != has(self.env)", "give exactly one of file or env")
        )
    )

    file: str | None = None
    env: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.file is None) == (self.env is None):
            raise ValueError("give exactly one of file or env")
        return self


class BasicAuth(WireModel):
    username: SecretValueSource
    password: SecretValueSource


class PrometheusAuth(WireModel):
    model_config = ConfigDict(
        json_schema_extra=cel(
            ("!(has(self.bearerToken) && has(self.basic))",
             "give one of bearerToken or basic, not both"),
        )
    )  # fmt: skip

    bearer_token: SecretValueSource | None = None
    basic: BasicAuth | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if self.bearer_token is not None and self.basic is not None:
            raise ValueError("give one of bearerToken or basic, not both")
        return self


class PrometheusRef(WireModel):
    url: str = Field(pattern=r"^https?://")
    timeout: PositiveDuration = timedelta(seconds=5)
    auth: PrometheusAuth | None = None
    insecure_skip_verify: bool = False
    ca_file: str | None = None

    def at(self, url: str | None) -> PrometheusRef:
        """The same Prometheus reached at `url` (e.g. a port-forward); itself when None."""
        return self if url is None else PrometheusRef.model_validate({**self.wire(), "url": url})


class Promotion(WireModel):
    manual_before: list[ReleaseStage] = Field(default_factory=list)
    settle_delay: Duration = Field(
        default=timedelta(seconds=10),
        description="After the stable subset moves to the new version, wait this long "
        "so every proxy has it before stable takes the traffic back.",
    )


class NotificationProvider(StrEnum):
    SLACK = "slack"
    TEAMS = "teams"
    WEBHOOK = "webhook"


class NotificationEvent(StrEnum):
    RELEASE_STARTED = "releaseStarted"
    STAGE_CHANGED = "stageChanged"
    WAITING_FOR_PROMOTION = "waitingForPromotion"
    ROLLED_BACK = "rolledBack"
    SUCCEEDED = "succeeded"
    ABORTED = "aborted"
    INVALID = "invalid"


class SecretKeyRef(WireModel):
    """A key of a Secret in the Rollout's namespace."""

    name: str = Field(pattern=DNS_LABEL)
    key: str = Field(default="address", min_length=1)


class Notification(WireModel):
    """Where to tell people about a release: the receiver's URL is read from a Secret."""

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL)
    provider: NotificationProvider
    secret_ref: SecretKeyRef = Field(description="The Secret key holding the receiver's URL.")
    events: list[NotificationEvent] | None = Field(
        default=None, description="Send only these events; default: all of them."
    )


class RolloutSpec(WireModel):
    model_config = ConfigDict(
        json_schema_extra=cel(
            ("self.stable.subset != self.canary.subset",
             "stable.subset and canary.subset must name two different DestinationRule subsets"),
        )
    )  # fmt: skip

    host: str = Field(min_length=1)
    virtual_service: VirtualServiceRef
    destination_rule: DestinationRuleRef
    stable: StableRef
    canary: CanaryRef
    version_label: str = Field(
        default="version",
        max_length=317,
        pattern=LABEL_KEY,
        description="The pod label that tells versions apart (Istio's destination_version).",
    )
    stages: Stages
    analysis: Analysis
    prometheus: PrometheusRef = PrometheusRef(url="http://prometheus.istio-system:9090")
    promotion: Promotion = Promotion()
    notifications: list[Notification] = Field(default_factory=list, max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _distinct_subsets(self) -> Self:
        if self.stable.subset == self.canary.subset:
            raise ValueError(
                "stable.subset and canary.subset must name two different DestinationRule subsets"
            )
        return self
