"""The base of every model of the Rollout resource: camelCase on the wire, strict, and the
patterns and bounds the API server needs."""

from __future__ import annotations

from typing import Any

from pydantic import AliasGenerator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

# Bounds the API server needs to price the CRD's CEL rules (and that no real Rollout reaches).
MAX_ITEMS = 32
MAX_QUERY = 8192

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# A label key: an optional DNS-subdomain prefix and '/', then a name of at most 63 characters.
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)


def cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """Rules the API server checks (CRD `x-kubernetes-validations`), each the twin of a
    validator of the model it is attached to, so `kubectl apply` refuses what canary would."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


class WireModel(BaseModel):
    """Base for every model: camelCase aliases, unknown fields rejected, values validated."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=to_camel, serialization_alias=to_camel),
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    def wire(self) -> dict[str, Any]:
        """The object as it travels to the API server: camelCase, no unset optionals."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
