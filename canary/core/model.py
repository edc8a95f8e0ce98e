"""The `Rollout` resource (group canary.dev, version v1alpha1): its metadata, its spec
(spec.py) and its status (status.py) as pydantic models.

Field names are camelCase on the wire, as in every Kubernetes resource."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from canary.core.spec import RolloutSpec
from canary.core.status import RolloutStatus
from canary.core.wire import DNS_SUBDOMAIN, WireModel

GROUP = "canary.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Rollout"
PLURAL = "rollouts"
REQUEST_ANNOTATION = "canary.dev/request"


class ObjectMeta(WireModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN)  # what kube-apiserver allows
    namespace: str = "default"
    generation: int | None = None
    resource_version: str | None = None
    uid: str | None = None
    annotations: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    deletion_timestamp: datetime | None = None
    finalizers: list[str] = Field(default_factory=list)


class Rollout(WireModel):
    api_version: Literal["canary.dev/v1alpha1"] = "canary.dev/v1alpha1"
    kind: Literal["Rollout"] = "Rollout"
    metadata: ObjectMeta
    spec: RolloutSpec
    status: RolloutStatus = RolloutStatus()

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"
