"""`KubeCluster`: the `Cluster` port on the official `kubernetes` client.

The only module that imports `kubernetes`. Every request goes through `_send` (or `_connect`
for watches): one token from the client-side rate limiter, a count per (verb, resource), the
`on_request` hook, and the translation of every `ApiException` or urllib3 error into the
port's typed errors. Objects stay plain dicts exactly as the API serves them: every call asks
for the raw response (`_preload_content=False`) and decodes the JSON itself.

Reads and idempotent writes (replace with a resourceVersion, merge patches) are retried a
few times on 429/5xx/connection errors, honouring Retry-After; creates are not.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal, cast

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from canary.common.pacing import Backoff, TokenBucket
from canary.core.model import GROUP, KIND, PLURAL, VERSION
from canary.core.objects import Obj
from canary.core.objects import resource_version as version_of
from canary.kube import events as ev
from canary.kube import leases
from canary.kube.errors import (
    ISTIO_CRDS_MISSING,
    ROLLOUT_CRD_MISSING,
    ExpiredError,
    Request,
    ServerBusyError,
    from_status,
    safe_host,
    unreachable,
)
from canary.kube.kubeconfig import Kubeconfig, KubeconfigError, kubeconfig_files, merge
from canary.kube.port import (
    ConflictError,
    CrdMissingError,
    InvalidError,
    KubeError,
    Mutation,
    NotFoundError,
    WatchEvent,
    WorkloadState,
    Written,
)
from canary.kube.workloads import deployment_state

ISTIO_GROUP = "networking.istio.io"
ISTIO_VERSIONS = ("v1", "v1beta1", "v1alpha3")
CONFLICT_ATTEMPTS = 5
MERGE_PATCH = "application/merge-patch+json"
JSON = "application/json"

WATCH_FACTORY: Any = k8s_watch.Watch
RequestHook = Callable[[str, str, int, float], None]
"""on_request(verb, resource, status_code, seconds); status 0 when no answer arrived."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class KubeCluster:
    """The Kubernetes API, as the controller and the CLI need it."""

    def __init__(
        self,
        configuration: k8s.Configuration,
        *,
        qps: float = 20,
        burst: int = 40,
        timeout: float = 10,
        retries: int = 3,
        retry_base_seconds: float = 0.5,
        retry_cap_seconds: float = 10.0,
        watch_timeout_seconds: int = 60,
        limiter: TokenBucket | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = _utc_now,
        user_agent: str | None = None,
    ) -> None:
        configuration.retries = False  # retries are ours: counted, rate limited, Retry-After
        self._api = k8s.ApiClient(configuration)
        if user_agent is not None:
            self._api.user_agent = user_agent
        self._custom = k8s.CustomObjectsApi(self._api)
        self._apps = k8s.AppsV1Api(self._api)
        self._core = k8s.CoreV1Api(self._api)
        self._coordination = k8s.CoordinationV1Api(self._api)
        self.host = safe_host(str(configuration.host))
        self.limiter = limiter if limiter is not None else TokenBucket(qps, burst)
        self.request_counts: Counter[tuple[str, str]] = Counter()
        self.on_request: RequestHook | None = None
        self._counts_lock = threading.Lock()
        self._timeout = timeout
        self._retries = retries
        self._retry_base = retry_base_seconds
        self._retry_cap = retry_cap_seconds
        self._watch_timeout = watch_timeout_seconds
        self._sleep = sleep
        self._now = now
        self._istio_version: str | None = None
        self._events = ev.EventCache()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_kubeconfig(
        cls,
        path: str | None = None,
        context: str | None = None,
        qps: float = 20,
        burst: int = 40,
        timeout: float = 10,
        **options: Any,
    ) -> KubeCluster:
        """From a kubeconfig file (default: the files of $KUBECONFIG, then ~/.kube/config)."""
        try:
            files = kubeconfig_files(path)
            kubeconfig = merge(files)
        except KubeconfigError as error:
            raise KubeError(
                f"cannot load the kubeconfig {error.path} ({error.problem}): {error.fix}"
            ) from None
        if not files:
            raise KubeError(
                "cannot load the kubeconfig: there is none at ~/.kube/config or in $KUBECONFIG; "
                "pass --kubeconfig"
            )
        return cls.from_merged(
            kubeconfig, context, qps=qps, burst=burst, timeout=timeout, **options
        )

    @classmethod
    def from_merged(
        cls,
        kubeconfig: Kubeconfig,
        context: str | None = None,
        qps: float = 20,
        burst: int = 40,
        timeout: float = 10,
        **options: Any,
    ) -> KubeCluster:
        """From a kubeconfig already read (its `context`, default its current one)."""
        configuration = k8s.Configuration()
        loader: Any = k8s_config.load_kube_config_from_dict
        try:
            loader(
                kubeconfig.document,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (k8s_config.ConfigException, OSError) as error:
            files = ", ".join(str(p) for p in kubeconfig.paths) or "(none)"
            raise KubeError(
                f"cannot load the kubeconfig {files}"
                f"{f' context {context}' if context else ''}: {_first_line(error)}; "
                "check --kubeconfig and --context"
            ) from None
        return cls(configuration, qps=qps, burst=burst, timeout=timeout, **options)

    @classmethod
    def in_cluster(
        cls, qps: float = 20, burst: int = 40, timeout: float = 10, **options: Any
    ) -> KubeCluster:
        """From the pod's service account (token, CA and KUBERNETES_SERVICE_HOST)."""
        configuration = k8s.Configuration()
        loader: Any = k8s_config.load_incluster_config
        try:
            loader(client_configuration=configuration)
        except k8s_config.ConfigException as error:
            raise KubeError(
                f"not running in a Kubernetes pod ({_first_line(error)}): "
                "give --kubeconfig to run outside the cluster"
            ) from None
        return cls(configuration, qps=qps, burst=burst, timeout=timeout, **options)

    def close(self) -> None:
        api: Any = self._api
        api.close()

    # ------------------------------------------------------------------ rollouts

    def list_rollouts(self, namespace: str | None) -> list[Obj]:
        items, _ = self._list_rollouts_with_version(namespace)
        return items

    def get_rollout(self, namespace: str, name: str) -> Obj:
        request = Request("get", PLURAL, KIND, namespace, name)
        return self._rollout_call(
            request,
            lambda: self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, **self._raw()
            ),
        )

    def stream_rollouts(self, namespace: str | None, stop: threading.Event) -> Iterator[WatchEvent]:
        """SYNC first, then changes; reconnects from the last resourceVersion, relists on 410."""
        return _ListWatchStream(
            self,
            lambda: self._list_rollouts_with_version(namespace),
            lambda version, watch: self._watch_rollouts(namespace, version, watch),
            stop,
        ).events()

    def patch_rollout_status(
        self, namespace: str, name: str, status: Obj, resource_version: str | None = None
    ) -> Obj:
        request = Request("patch", PLURAL, KIND, namespace, name, "status")
        body: Obj = {"status": status}
        if resource_version is not None:  # a precondition: 409 if the Rollout moved on
            body["metadata"] = {"resourceVersion": resource_version}
        return self._rollout_call(
            request,
            lambda: self._custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                body,
                _content_type=MERGE_PATCH,
                **self._raw(),
            ),
        )

    def patch_rollout_metadata(self, namespace: str, name: str, metadata: Obj) -> Obj:
        request = Request("patch", PLURAL, KIND, namespace, name)
        return self._rollout_call(
            request,
            lambda: self._custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"metadata": metadata},
                _content_type=MERGE_PATCH,
                **self._raw(),
            ),
        )

    def _list_rollouts_with_version(self, namespace: str | None) -> tuple[list[Obj], str]:
        request = Request("list", PLURAL, KIND, namespace)
        listed = self._rollout_call(request, lambda: self._list_rollouts_raw(namespace, {}))
        version = str(listed.get("metadata", {}).get("resourceVersion") or "")
        return list(listed.get("items") or []), version

    def _list_rollouts_raw(self, namespace: str | None, options: dict[str, Any]) -> object:
        merged = {**self._raw(), **options}
        if namespace:
            return self._custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, **merged
            )
        return self._custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **merged)

    def _rollout_call(self, request: Request, call: Callable[[], object]) -> Obj:
        """A Rollout request whose 404 means the CRD is missing unless discovery serves it."""
        try:
            return self._send(request, call)
        except NotFoundError:
            if not self._serves(GROUP, VERSION, PLURAL):
                raise CrdMissingError(ROLLOUT_CRD_MISSING) from None
            raise

    def _watch_rollouts(
        self, namespace: str | None, resource_version: str, watch: Any
    ) -> Iterator[Obj]:
        """Raw watch events from `resource_version` until the server ends the stream."""
        request = Request("watch", PLURAL, KIND, namespace)
        return self._watch_raw(
            request,
            lambda options: self._list_rollouts_raw(namespace, options),
            resource_version,
            watch,
        )

    def _watch_raw(
        self,
        request: Request,
        list_raw: Callable[[dict[str, Any]], object],
        resource_version: str,
        watch: Any,
    ) -> Iterator[Obj]:
        """Raw watch events of one list call from `resource_version` until the stream ends."""

        def connect(**options: Any) -> Any:  # no model return type: events stay dicts
            return self._connect(request, lambda: list_raw(options))

        stream = watch.stream(
            connect,
            resource_version=resource_version,
            timeout_seconds=self._watch_timeout,
            allow_watch_bookmarks=True,
            _request_timeout=(self._timeout, self._watch_timeout + self._timeout),
        )
        try:
            yield from stream
        except ApiException as error:
            raise self._translate(request, error) from error
        except urllib3.exceptions.HTTPError as error:
            raise unreachable(self.host) from error

    # ------------------------------------------------------------------ Istio

    def get_virtual_service(self, namespace: str, name: str) -> Obj:
        return self._get_istio("VirtualService", "virtualservices", namespace, name)

    def update_virtual_service(self, namespace: str, name: str, mutate: Mutation) -> Written:
        return self._read_modify_write("VirtualService", "virtualservices", namespace, name, mutate)

    def get_destination_rule(self, namespace: str, name: str) -> Obj:
        return self._get_istio("DestinationRule", "destinationrules", namespace, name)

    def update_destination_rule(self, namespace: str, name: str, mutate: Mutation) -> Written:
        return self._read_modify_write(
            "DestinationRule", "destinationrules", namespace, name, mutate
        )

    def replace_virtual_service(self, namespace: str, obj: Obj) -> Obj:
        """PUT `obj` as is (its resourceVersion is the precondition: 409 if it moved on)."""
        return self._replace_istio("VirtualService", "virtualservices", namespace, obj)

    def replace_destination_rule(self, namespace: str, obj: Obj) -> Obj:
        """PUT `obj` as is (its resourceVersion is the precondition: 409 if it moved on)."""
        return self._replace_istio("DestinationRule", "destinationrules", namespace, obj)

    def stream_virtual_services(
        self, namespace: str | None, stop: threading.Event
    ) -> Iterator[WatchEvent]:
        """Like `stream_rollouts`, for VirtualServices (the informer caches feed on it)."""
        return self._stream_istio("VirtualService", "virtualservices", namespace, stop)

    def stream_destination_rules(
        self, namespace: str | None, stop: threading.Event
    ) -> Iterator[WatchEvent]:
        """Like `stream_rollouts`, for DestinationRules (the informer caches feed on it)."""
        return self._stream_istio("DestinationRule", "destinationrules", namespace, stop)

    def _stream_istio(
        self, kind: str, plural: str, namespace: str | None, stop: threading.Event
    ) -> Iterator[WatchEvent]:
        def list_raw(options: dict[str, Any]) -> object:
            return self._list_istio_raw(plural, namespace, options)

        def listed() -> tuple[list[Obj], str]:
            answer = self._send(Request("list", plural, kind, namespace), lambda: list_raw({}))
            version = str(answer.get("metadata", {}).get("resourceVersion") or "")
            return list(answer.get("items") or []), version

        def watched(version: str, watch: Any) -> Iterator[Obj]:
            request = Request("watch", plural, kind, namespace)
            return self._watch_raw(request, list_raw, version, watch)

        return _ListWatchStream(self, listed, watched, stop).events()

    def _list_istio_raw(
        self, plural: str, namespace: str | None, options: dict[str, Any]
    ) -> object:
        merged = {**self._raw(), **options}
        version = self.istio_version()
        if namespace:
            return self._custom.list_namespaced_custom_object(
                ISTIO_GROUP, version, namespace, plural, **merged
            )
        return self._custom.list_cluster_custom_object(ISTIO_GROUP, version, plural, **merged)

    def istio_version(self) -> str:
        """The networking.istio.io version the server serves (v1, v1beta1 or v1alpha3)."""
        if self._istio_version is None:
            self._istio_version = self._discover_istio_version()
        return self._istio_version

    def _discover_istio_version(self) -> str:
        for version in ISTIO_VERSIONS:
            if self._serves(ISTIO_GROUP, version, "virtualservices"):
                return version
        raise CrdMissingError(ISTIO_CRDS_MISSING)

    def _get_istio(self, kind: str, plural: str, namespace: str, name: str) -> Obj:
        version = self.istio_version()
        return self._send(
            Request("get", plural, kind, namespace, name),
            lambda: self._custom.get_namespaced_custom_object(
                ISTIO_GROUP, version, namespace, plural, name, **self._raw()
            ),
        )

    def _replace_istio(self, kind: str, plural: str, namespace: str, obj: Obj) -> Obj:
        version = self.istio_version()
        name = obj["metadata"]["name"]
        return self._send(
            Request("update", plural, kind, namespace, name),
            lambda: self._custom.replace_namespaced_custom_object(
                ISTIO_GROUP,
                version,
                namespace,
                plural,
                name,
                obj,
                _content_type=JSON,
                **self._raw(),
            ),
        )

    def _read_modify_write(
        self, kind: str, plural: str, namespace: str, name: str, mutate: Mutation
    ) -> Written:
        """GET, mutate, PUT with the read resourceVersion; on 409 start again from a fresh GET."""
        for _ in range(CONFLICT_ATTEMPTS):
            current = self._get_istio(kind, plural, namespace, name)
            desired = mutate(copy.deepcopy(current))
            if desired is None:
                return Written(current, False)
            desired.setdefault("metadata", {})["resourceVersion"] = version_of(current)
            try:
                return Written(self._replace_istio(kind, plural, namespace, desired), True)
            except ConflictError:
                continue
        raise ConflictError(
            f"{kind} {namespace}/{name} kept changing while canary updated it "
            f"({CONFLICT_ATTEMPTS} attempts): check whether another controller also writes it"
        )

    # ------------------------------------------------------------------ workloads

    def workload_state(self, namespace: str, kind: str, name: str) -> WorkloadState:
        if kind != "Deployment":
            raise InvalidError(
                f"workloadRef kind {kind} ({namespace}/{name}) is not supported: use Deployment"
            )
        request = Request("get", "deployments", "Deployment", namespace, name)
        try:
            deployment: Obj | None = self._send(
                request,
                lambda: self._apps.read_namespaced_deployment(name, namespace, **self._raw()),
            )
        except NotFoundError:
            deployment = None
        return deployment_state(namespace, name, deployment)

    def stream_deployments(
        self, namespace: str | None, stop: threading.Event
    ) -> Iterator[WatchEvent]:
        """Like `stream_rollouts`, for Deployments (the canary's readiness is read from it)."""

        def list_raw(options: dict[str, Any]) -> object:
            merged = {**self._raw(), **options}
            if namespace:
                return self._apps.list_namespaced_deployment(namespace, **merged)
            return self._apps.list_deployment_for_all_namespaces(**merged)

        def listed() -> tuple[list[Obj], str]:
            request = Request("list", "deployments", "Deployment", namespace)
            answer = self._send(request, lambda: list_raw({}))
            version = str(answer.get("metadata", {}).get("resourceVersion") or "")
            return list(answer.get("items") or []), version

        def watched(version: str, watch: Any) -> Iterator[Obj]:
            request = Request("watch", "deployments", "Deployment", namespace)
            return self._watch_raw(request, list_raw, version, watch)

        return _ListWatchStream(self, listed, watched, stop).events()

    # ------------------------------------------------------------------ secrets

    def get_secret(self, namespace: str, name: str) -> dict[str, str]:
        request = Request("get", "secrets", "Secret", namespace, name)
        secret = self._send(
            request, lambda: self._core.read_namespaced_secret(name, namespace, **self._raw())
        )
        return secret_values(secret)

    # ------------------------------------------------------------------ events

    def record_event(
        self, involved: Obj, type_: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        now = self._now()
        reference = ev.involved_reference(involved)
        text = ev.truncate(message)
        key = ev.event_key(reference, type_, reason, text)
        seen = self._events.recent(key, now)
        if seen is not None and self._repeat_event(reference, seen, now):
            self._events.remember(key, ev.SeenEvent(seen.name, seen.count + 1, now))
            return
        created = self._create_event(ev.new_event(reference, type_, reason, text, now))
        self._events.remember(key, ev.SeenEvent(created["metadata"]["name"], 1, now))

    def list_events(self, namespace: str, name: str) -> list[Obj]:
        """Events about `name` in `namespace`, oldest first."""
        try:
            listed = self._list_events(namespace, f"involvedObject.name={name}")
        except InvalidError:  # the server does not support this field selector
            listed = self._list_events(namespace, None)
        about = [event for event in listed if event.get("involvedObject", {}).get("name") == name]
        return sorted(about, key=ev.sort_key)

    def _list_events(self, namespace: str, selector: str | None) -> list[Obj]:
        listed = self._send(
            Request("list", "events", "Event", namespace),
            lambda: self._core.list_namespaced_event(
                namespace, field_selector=selector, **self._raw()
            ),
        )
        return list(listed.get("items") or [])

    def _create_event(self, event: Obj) -> Obj:
        namespace = event["metadata"]["namespace"]
        return self._send(
            Request("create", "events", "Event", namespace, event["metadata"]["name"]),
            lambda: self._core.create_namespaced_event(
                namespace, _model(k8s.CoreV1Event, event), _content_type=JSON, **self._raw()
            ),
            retry=False,
        )

    def _repeat_event(self, reference: Obj, seen: ev.SeenEvent, now: datetime) -> bool:
        """Bump the count of an event recorded before; False when it is gone."""
        namespace = reference.get("namespace") or "default"
        try:
            self._send(
                Request("patch", "events", "Event", namespace, seen.name),
                lambda: self._core.patch_namespaced_event(
                    seen.name,
                    namespace,
                    ev.repeat_patch(seen, now),
                    _content_type=MERGE_PATCH,
                    **self._raw(),
                ),
            )
        except NotFoundError:
            return False
        return True

    # ------------------------------------------------------------------ leases

    def try_acquire_lease(
        self,
        namespace: str,
        name: str,
        identity: str,
        duration_seconds: int,
        timeout: float | None = None,
    ) -> bool:
        """Acquire or renew; False when another holder's lease has not expired.

        The moment written as renewTime is taken after the read: one from before it would
        make a read that took long write a Lease that expires early, and another candidate
        would take it over while this one still counts on it. With `timeout`, the read and
        the write together get that many seconds and no retries (a renewal that cannot
        finish before its holder's renew deadline is of no use to it)."""
        budget = _Budget(timeout, self._timeout)
        try:
            current = self._read_lease(namespace, name, budget)
        except NotFoundError:
            lease = leases.new_lease(namespace, name, identity, duration_seconds, self._now())
            return self._write_lease("create", lease, budget)
        claimed = leases.claim(current, identity, duration_seconds, self._now())
        if claimed is None:
            return False
        return self._write_lease("update", claimed, budget)

    def _read_lease(self, namespace: str, name: str, budget: _Budget) -> Obj:
        request = Request("get", "leases", "Lease", namespace, name)
        options = self._raw(budget.left(request))
        return self._send(
            request,
            lambda: self._coordination.read_namespaced_lease(name, namespace, **options),
            retry=budget.retries,
        )

    def _write_lease(self, verb: Literal["create", "update"], lease: Obj, budget: _Budget) -> bool:
        """Write with the read resourceVersion as precondition; False when someone else won."""
        namespace = lease["metadata"]["namespace"]
        name = lease["metadata"]["name"]
        request = Request(verb, "leases", "Lease", namespace, name)
        options = self._raw(budget.left(request))
        try:
            if verb == "create":
                self._send(request, lambda: self._create_lease(namespace, lease, options), False)
            else:
                self._send(
                    request,
                    lambda: self._replace_lease(namespace, name, lease, options),
                    budget.retries,
                )
        except ConflictError:
            return False
        return True

    def _create_lease(self, namespace: str, lease: Obj, options: dict[str, Any]) -> object:
        return self._coordination.create_namespaced_lease(
            namespace, _model(k8s.V1Lease, lease), _content_type=JSON, **options
        )

    def _replace_lease(
        self, namespace: str, name: str, lease: Obj, options: dict[str, Any]
    ) -> object:
        return self._coordination.replace_namespaced_lease(
            name, namespace, _model(k8s.V1Lease, lease), _content_type=JSON, **options
        )

    def list_leases(self, namespace: str, prefix: str, timeout: float | None = None) -> list[Obj]:
        """The Leases in `namespace` whose name begins with `prefix`. With `timeout`, one
        attempt of at most that many seconds (as a renewal's)."""
        budget = _Budget(timeout, self._timeout)
        request = Request("list", "leases", "Lease", namespace)
        options = self._raw(budget.left(request))
        listed = self._send(
            request,
            lambda: self._coordination.list_namespaced_lease(namespace, **options),
            retry=budget.retries,
        )
        items = listed.get("items") or []
        return [lease for lease in items if lease["metadata"]["name"].startswith(prefix)]

    def release_lease(
        self, namespace: str, name: str, identity: str, timeout: float | None = None
    ) -> bool:
        """Hand the Lease back (no holder), if `identity` still holds it; False if it did not
        (or someone wrote it meanwhile). The holder has stopped writing before it calls this."""
        budget = _Budget(timeout, self._timeout)
        try:
            current = self._read_lease(namespace, name, budget)
        except NotFoundError:
            return False
        given = leases.released(current, identity, self._now())
        if given is None:
            return False
        return self._write_lease("update", given, budget)

    def delete_lease(
        self, namespace: str, name: str, resource_version: str, timeout: float | None = None
    ) -> bool:
        """Delete the Lease if it is still at `resource_version` (a replica gone: its member
        Lease expired); False when it is gone already or was renewed meanwhile."""
        budget = _Budget(timeout, self._timeout)
        request = Request("delete", "leases", "Lease", namespace, name)
        options = self._raw(budget.left(request))
        body = k8s.V1DeleteOptions(
            preconditions=k8s.V1Preconditions(resource_version=resource_version)
        )
        try:
            self._send(
                request,
                lambda: self._coordination.delete_namespaced_lease(
                    name, namespace, body=body, **options
                ),
                budget.retries,
            )
        except (NotFoundError, ConflictError):
            return False
        return True

    # ------------------------------------------------------------------ discovery

    def _serves(self, group: str, version: str, plural: str) -> bool:
        """Does the server serve `plural` in group/version? (discovery; 404 means no)"""
        request = Request("get", "discovery", "APIResourceList", None, f"{group}/{version}")
        try:
            resources = self._send(
                request,
                lambda: self._custom.get_api_resources(group, version, **self._raw()),
            )
        except NotFoundError:
            return False
        return any(item.get("name") == plural for item in resources.get("resources") or [])

    # ------------------------------------------------------------------ transport

    def _raw(self, timeout: float | None = None) -> dict[str, Any]:
        """Options for every call: the raw response (plain dicts), and our timeout."""
        return {"_preload_content": False, "_request_timeout": timeout or self._timeout}

    def _send(self, request: Request, call: Callable[[], object], retry: bool = True) -> Obj:
        """One API request, retried on 429/5xx/connection errors when `retry`; its JSON body."""
        backoff = Backoff(self._retry_base, self._retry_cap)
        for attempt in itertools.count():
            try:
                return self._fetch(request, call)
            except ServerBusyError as error:
                if not retry or attempt >= self._retries:
                    raise
                self._sleep(self._retry_delay(error, backoff))
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch(self, request: Request, call: Callable[[], object]) -> Obj:
        response = self._connect(request, call)
        try:
            return _decode(response)
        except urllib3.exceptions.HTTPError as error:
            raise unreachable(self.host) from error

    def _retry_delay(self, error: ServerBusyError, backoff: Backoff) -> float:
        if error.retry_after is not None:
            backoff.next_delay()
            return min(error.retry_after, self._retry_cap)
        return backoff.next_delay()

    def _connect(self, request: Request, call: Callable[[], object]) -> urllib3.BaseHTTPResponse:
        """Send one request (after a rate-limiter token) and return the undecoded response."""
        self.limiter.acquire()
        started = time.monotonic()
        status = 0
        try:
            response = cast(urllib3.BaseHTTPResponse, call())
            status = response.status
            return response
        except ApiException as error:
            status = int(error.status or 0)
            raise self._translate(request, error) from error
        except urllib3.exceptions.HTTPError as error:
            raise unreachable(self.host) from error
        finally:
            self._account(request, status, time.monotonic() - started)

    def _translate(self, request: Request, error: ApiException) -> KubeError:
        status = int(error.status or 0)
        if status == 0:
            return unreachable(self.host)
        headers = dict(error.headers) if error.headers else None
        body = error.body if isinstance(error.body, str) else None
        return from_status(request, status, body, headers, self.host)

    def _account(self, request: Request, status: int, seconds: float) -> None:
        with self._counts_lock:
            self.request_counts[(request.verb, request.resource_path)] += 1
        if self.on_request is not None:
            self.on_request(request.verb, request.resource_path, status, seconds)


ListCall = Callable[[], tuple[list[Obj], str]]
WatchCall = Callable[[str, Any], Iterator[Obj]]


class _Budget:
    """The seconds a group of requests may take together; None: each its own timeout."""

    def __init__(self, seconds: float | None, per_request: float) -> None:
        self._deadline = None if seconds is None else time.monotonic() + seconds
        self._per_request = per_request

    @property
    def retries(self) -> bool:
        """Whether a request may be retried: only without a budget, which retries would pass."""
        return self._deadline is None

    def left(self, request: Request) -> float:
        """The timeout for `request`: what is left of the budget, or ServerBusyError if nothing."""
        if self._deadline is None:
            return self._per_request
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise ServerBusyError(f"no time left to {request.verb} {request.target}")
        return min(left, self._per_request)


class _ListWatchStream:
    """list → SYNC → watch → (reconnect | relist on 410), until `stop` is set.

    Transient failures (unreachable, 429/5xx, a dropped stream) never leave the generator:
    it waits with backoff and jitter, then resumes from the last resourceVersion it saw.
    A missing CRD or a missing permission is not transient and is raised to the caller.
    """

    def __init__(
        self,
        cluster: KubeCluster,
        list_call: ListCall,
        watch_call: WatchCall,
        stop: threading.Event,
    ):
        self._list_call = list_call
        self._watch_call = watch_call
        self._stop = stop
        self._backoff = Backoff(cluster._retry_base, max(cluster._retry_cap, 30.0))
        self._watch: Any = None
        self._finished = threading.Event()

    def events(self) -> Iterator[WatchEvent]:
        guard = threading.Thread(target=self._stop_watch_on_stop, daemon=True)
        guard.start()
        try:
            while not self._stop.is_set():
                listed = self._list()
                if listed is None:
                    continue
                objects, resource_version = listed
                yield WatchEvent("SYNC", objects=tuple(objects))
                yield from self._watch_from(resource_version)
        finally:
            self._finished.set()

    def _list(self) -> tuple[list[Obj], str] | None:
        try:
            listed = self._list_call()
        except (ServerBusyError, ConflictError, ExpiredError):
            self._pause()
            return None
        self._backoff.reset()
        return listed

    def _watch_from(self, resource_version: str) -> Iterator[WatchEvent]:
        """Watch events until stopped, or until the resourceVersion expires (caller relists)."""
        while not self._stop.is_set():
            self._watch = WATCH_FACTORY()
            try:
                for raw in self._watch_call(resource_version, self._watch):
                    resource_version = version_of(_event_object(raw)) or resource_version
                    event = _watch_event(raw)
                    if event is not None:
                        self._backoff.reset()
                        yield event
                    if self._stop.is_set():
                        return
            except ExpiredError:
                return
            except (ServerBusyError, ConflictError):
                self._pause()

    def _pause(self) -> None:
        self._stop.wait(self._backoff.next_delay())

    def _stop_watch_on_stop(self) -> None:
        """Once `stop` is set, close the open watch (again and again: a watch being opened
        at that moment clears the flag, so one `Watch.stop()` can be lost) until we end."""
        while not self._stop.wait(0.25):
            if self._finished.is_set():
                return
        while not self._finished.is_set():
            if self._watch is not None:
                self._watch.stop()
            self._finished.wait(0.05)


def _model(model: Any, obj: Obj) -> Any:
    """The typed client's model for a built-in kind (it re-serialises it as the API expects)."""
    built = model.from_dict(obj)
    if built is None:
        raise InvalidError(f"cannot build a {model.__name__} from {obj.get('kind')} {obj}")
    return built


def _watch_event(raw: Obj) -> WatchEvent | None:
    kind = raw.get("type")
    if kind in ("ADDED", "MODIFIED", "DELETED"):
        return WatchEvent(kind, object=_event_object(raw))
    return None  # BOOKMARK: only moves the resourceVersion


def _event_object(raw: Obj) -> Obj:
    """The event's object as the server sent it (the client keeps it as `raw_object`)."""
    obj = raw.get("raw_object", raw.get("object"))
    return obj if isinstance(obj, dict) else {}


def _decode(response: urllib3.BaseHTTPResponse) -> Obj:
    try:
        data = response.data
    finally:
        response.release_conn()
    if not data:
        return {}
    decoded = json.loads(data)
    return decoded if isinstance(decoded, dict) else {"items": decoded}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def secret_values(secret: Obj) -> dict[str, str]:
    """A Secret's `data` (base64) decoded, with any `stringData` a test server kept."""
    values = {
        key: base64.b64decode(value).decode("utf-8", "replace")
        for key, value in (secret.get("data") or {}).items()
    }
    values.update({str(k): str(v) for k, v in (secret.get("stringData") or {}).items()})
    return values
