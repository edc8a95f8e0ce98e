"""The controller-wide notification configuration (`canary controller --notifications FILE`).

notifications:
  - name: platform-slack
    provider: slack
    secretRef: {namespace: canary-system, name: slack-webhook, key: address}
    events: [rolledBack, succeeded]          # optional; default every event
  - name: audit
    provider: webhook
    urlFile: /etc/canary/audit-url           # or a mounted Secret
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

import yaml
from pydantic import Field, ValidationError, model_validator

from canary.core.errors import describe_validation_error
from canary.core.spec import NotificationEvent, NotificationProvider, SecretKeyRef
from canary.core.wire import DNS_LABEL, WireModel


class NamespacedSecretKeyRef(SecretKeyRef):
    namespace: str = Field(pattern=DNS_LABEL)


class ControllerNotification(WireModel):
    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL)
    provider: NotificationProvider
    secret_ref: NamespacedSecretKeyRef | None = None
    url_file: str | None = None
    events: list[NotificationEvent] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.secret_ref is None) == (self.url_file is None):
            raise ValueError(
                f"notification {self.name!r}: give exactly one of secretRef or urlFile"
            )
        return self


class NotificationConfig(WireModel):
    notifications: list[ControllerNotification] = Field(default_factory=list)


class ConfigError(ValueError):
    """The notification configuration file is unreadable or invalid; the message says why."""


def load_config(path: str) -> NotificationConfig:
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read the notification configuration {path}: {error}") from None
    try:
        return NotificationConfig.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(describe_validation_error(error))
        raise ConfigError(f"the notification configuration {path} is invalid: {problems}") from None
