"""Wiring of the integrations: notifications (with URLs from Secrets) and webhook checks,
each reporting its outcomes to the controller's metrics."""

from __future__ import annotations

from canary.controller.telemetry import Telemetry
from canary.kube.port import Cluster, KubeError
from canary.notify.config import load_config
from canary.notify.dispatcher import Dispatcher, UrlUnavailableError
from canary.notify.notifier import Notifier, SecretReader
from canary.webhooks.http import HttpWebhooks


def secret_reader(cluster: Cluster) -> SecretReader:
    """read(namespace, name, key): one Secret value, or UrlUnavailableError naming the fix."""

    def read(namespace: str, name: str, key: str) -> str:
        try:
            values = cluster.get_secret(namespace, name)
        except KubeError as error:
            raise UrlUnavailableError(str(error)) from None
        value = values.get(key, "").strip()
        if not value:
            raise UrlUnavailableError(
                f"Secret {namespace}/{name} has no key {key!r}; put the receiver's URL there"
            )
        return value

    return read


def notifier(cluster: Cluster, telemetry: Telemetry, config_path: str | None) -> Notifier:
    """Raises ConfigError (one sentence) when the controller-wide configuration is invalid."""
    controller_wide = load_config(config_path).notifications if config_path else []
    dispatcher = Dispatcher(
        on_delivery=lambda provider, outcome: telemetry.notifications.labels(
            provider, outcome
        ).inc()
    )
    return Notifier(dispatcher, secret_reader(cluster), controller_wide)


def webhooks(telemetry: Telemetry) -> HttpWebhooks:
    return HttpWebhooks(
        on_call=lambda type_, outcome: telemetry.webhook_calls.labels(type_, outcome).inc()
    )
