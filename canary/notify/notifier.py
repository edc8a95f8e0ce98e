"""The `NotificationSink` the controller uses: which receivers get which notice, and how.

Receivers come from the Rollout (`spec.notifications`, the URL in a Secret of the Rollout's
namespace) and from the controller's own configuration (every Rollout). Each notice is
formatted by its provider module and handed to the `Dispatcher`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

from canary.core.model import Rollout
from canary.core.notices import Notice
from canary.core.spec import Notification, NotificationEvent, NotificationProvider
from canary.notify import slack, teams, webhook
from canary.notify.config import ControllerNotification
from canary.notify.dispatcher import Delivery, Dispatcher, UrlUnavailableError

PROVIDERS: dict[NotificationProvider, ModuleType] = {
    NotificationProvider.SLACK: slack,
    NotificationProvider.TEAMS: teams,
    NotificationProvider.WEBHOOK: webhook,
}

SecretReader = Callable[[str, str, str], str]
"""read(namespace, name, key) -> the value; raises UrlUnavailableError with a clear sentence."""


@dataclass(frozen=True)
class Receiver:
    label: str
    provider: NotificationProvider
    events: frozenset[NotificationEvent] | None
    resolve_url: Callable[[], str]

    def wants(self, notice: Notice) -> bool:
        return self.events is None or notice.event in self.events


class Notifier:
    def __init__(
        self,
        dispatcher: Dispatcher,
        read_secret: SecretReader,
        controller_wide: Sequence[ControllerNotification] = (),
    ) -> None:
        self._dispatcher = dispatcher
        self._read_secret = read_secret
        self._global = [self._global_receiver(n) for n in controller_wide]

    def notify(self, rollout: Rollout, notices: tuple[Notice, ...]) -> None:
        if not notices:
            return
        receivers = [*self._global, *self._rollout_receivers(rollout)]
        for notice in notices:
            for receiver in receivers:
                if receiver.wants(notice):
                    self._dispatcher.submit(
                        Delivery(
                            receiver=receiver.label,
                            provider=receiver.provider.value,
                            resolve_url=receiver.resolve_url,
                            body=PROVIDERS[receiver.provider].body(notice),
                        )
                    )

    def close(self, timeout: float = 5.0) -> None:
        self._dispatcher.close(timeout)

    def _rollout_receivers(self, rollout: Rollout) -> list[Receiver]:
        namespace = rollout.metadata.namespace
        return [
            self._rollout_receiver(namespace, rollout.metadata.name, n)
            for n in rollout.spec.notifications
        ]

    def _rollout_receiver(self, namespace: str, name: str, spec: Notification) -> Receiver:
        ref = spec.secret_ref

        def resolve() -> str:
            return self._read_secret(namespace, ref.name, ref.key)

        events = frozenset(spec.events) if spec.events is not None else None
        return Receiver(f"{namespace}/{name} {spec.name}", spec.provider, events, resolve)

    def _global_receiver(self, spec: ControllerNotification) -> Receiver:
        def resolve() -> str:
            if spec.url_file is not None:
                return _read_url_file(spec.url_file, spec.name)
            ref = spec.secret_ref
            assert ref is not None  # validated: one of urlFile or secretRef
            return self._read_secret(ref.namespace, ref.name, ref.key)

        events = frozenset(spec.events) if spec.events is not None else None
        return Receiver(f"controller {spec.name}", spec.provider, events, resolve)


def _read_url_file(path: str, name: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as error:
        raise UrlUnavailableError(
            f"notification {name}: cannot read urlFile {path} ({error.strerror}); "
            "mount the Secret holding the receiver's URL there"
        ) from None
