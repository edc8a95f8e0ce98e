"""A local Kubernetes API server for tests and the demo, over plain HTTP on 127.0.0.1.

Both the official `kubernetes` Python client and a real `kubectl` can talk to it:

    server = ApiServer().start()
    server.install_crd_files(bundled_crd_paths())
    server.write_kubeconfig("/tmp/kubeconfig")
    ...
    server.stop()

The HTTP layer lives here; storage and watches are in `store`, object semantics in `objects`,
schemas in `schema`, patches in `patch`, discovery and OpenAPI in `discovery`, fault injection
and request counting in `faults`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from canary.core.objects import Obj
from canary_sandbox import discovery, errors, protobuf
from canary_sandbox.errors import ApiError
from canary_sandbox.faults import Faults, RequestLog, RequestRecord
from canary_sandbox.objects import ObjectService, WriteOptions, ensure_namespace
from canary_sandbox.resources import CRD_GROUP, CRD_PLURAL, Registry, ResourceType
from canary_sandbox.selectors import Matcher, field_selector, label_selector, supported_fields
from canary_sandbox.store import Store, StoredEvent, WatchExpiredError, WatchHandle
from canary_sandbox.table import as_table, wants_table

CRD_DIRECTORY = Path(__file__).parent / "crds"
WATCH_POLL_SECONDS = 0.5
HEALTH_PATHS = ("/healthz", "/readyz", "/livez")
OPENAPI_V2_PROTOBUF = "application/octet-stream"
# An empty protobuf message is a valid, empty OpenAPI v2 Document. kubectl <= 1.27 reads only v2:
# it then finds no schema for any kind, skips client-side validation and sends no
# fieldValidation parameter (the server then prunes and warns). Newer kubectl uses /openapi/v3.
EMPTY_OPENAPI_V2 = b""


def bundled_crd_paths() -> list[Path]:
    """The Istio VirtualService and DestinationRule CRDs shipped with the sandbox."""
    return sorted(CRD_DIRECTORY.glob("*.yaml"))


def load_yaml_documents(paths: Iterable[str | Path]) -> list[Obj]:
    documents: list[Obj] = []
    for path in paths:
        with open(path, encoding="utf-8") as stream:
            documents.extend(doc for doc in yaml.safe_load_all(stream) if isinstance(doc, dict))
    return documents


@dataclass(frozen=True)
class ResourcePath:
    group: str
    version: str
    namespace: str | None
    plural: str
    name: str | None
    subresource: str | None


def parse_resource_path(path: str) -> ResourcePath | None:
    parts = [unquote(part) for part in path.split("/") if part]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    is_namespace_subresource = len(rest) == 3 and rest[2] in ("status", "finalize")
    if rest[0] == "namespaces" and len(rest) >= 3 and not is_namespace_subresource:
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return None
    padded = [*rest, None, None]
    return ResourcePath(group, version, namespace, rest[0], padded[1], padded[2])


def _is_true(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Answers are written in pieces (headers, then body); without TCP_NODELAY each keep-alive
    # request waits ~40 ms for Nagle's algorithm and the client's delayed ACK.
    disable_nagle_algorithm = True
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and the demo do not want one line per request."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    @property
    def api(self) -> ApiServer:
        return self.server.api

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            body = self._read_body()
            self._apply_global_faults()
            resource_path = parse_resource_path(url.path)
            if resource_path is None:
                self._serve_non_resource(method, url.path)
            else:
                self._serve_resource(method, resource_path, query, body)
        except ApiError as error:
            self._send_json(error.code, error.status(), error.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _apply_global_faults(self) -> None:
        if self.api.faults.delay_seconds > 0:
            time.sleep(self.api.faults.delay_seconds)
        if self.api.faults.offline:
            raise ApiError(503, "ServiceUnavailable", "the sandbox API server is offline")

    # --- discovery, OpenAPI, health ------------------------------------------------------

    def _serve_non_resource(self, method: str, path: str) -> None:
        if method != "GET":
            raise errors.method_not_allowed()
        path = path.rstrip("/") or "/"
        document = self._non_resource_document(path)
        if document is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if isinstance(document, bytes):
            self._send_bytes(200, document, OPENAPI_V2_PROTOBUF)
        elif isinstance(document, str):
            self._send_bytes(200, document.encode(), "text/plain; charset=utf-8")
        else:
            self._send_json(200, document)

    def _non_resource_document(self, path: str) -> Obj | str | bytes | None:
        registry = self.api.registry
        parts = path.strip("/").split("/")
        if path in HEALTH_PATHS:
            return "ok"
        if path == "/version":
            return discovery.version_info()
        if path == "/api":
            return discovery.api_versions(f"{self.api.host}:{self.api.port}")
        if path == "/apis":
            return discovery.api_group_list(registry)
        if parts[0] == "api" and len(parts) == 2:
            return discovery.api_resource_list(registry, "", parts[1])
        if parts[0] == "apis" and len(parts) == 2:
            return discovery.api_group(registry, parts[1])
        if parts[0] == "apis" and len(parts) == 3:
            return discovery.api_resource_list(registry, parts[1], parts[2])
        if path in ("/openapi/v2", "/swagger-2.0.0.pb-v1"):
            return EMPTY_OPENAPI_V2
        if path == "/openapi/v3":
            return discovery.openapi_index(registry)
        if parts[:2] == ["openapi", "v3"] and parts[2:3] == ["api"] and len(parts) == 4:
            return self._openapi_document("", parts[3])
        if parts[:2] == ["openapi", "v3"] and parts[2:3] == ["apis"] and len(parts) == 5:
            return self._openapi_document(parts[3], parts[4])
        return None

    def _openapi_document(self, group: str, version: str) -> Obj | None:
        if not self.api.registry.types_in(group, version):
            return None
        return discovery.openapi_document(self.api.registry, group, version)

    # --- resources -----------------------------------------------------------------------

    def _serve_resource(
        self, method: str, path: ResourcePath, query: dict[str, str], body: bytes
    ) -> None:
        rt = self._resource_type(path)
        verb = _verb(method, path, query)
        namespace = path.namespace or ""
        record = RequestRecord(
            verb,
            rt.group,
            rt.plural,
            namespace,
            path.name or "",
            path.subresource or "",
            200,
            self.headers.get("User-Agent", ""),
        )
        injected = self.api.faults.take(verb, rt.plural)
        try:
            if injected is not None:
                raise injected
            if verb == "watch":
                self.api.request_log.add(record)
                self._watch(rt, path.namespace, query)
                return
            options = WriteOptions(field_validation=query.get("fieldValidation", "Warn"))
            code, answer = self._resource_answer(verb, rt, path, query, body=body, options=options)
        except ApiError as error:
            self.api.request_log.add(_with_code(record, error.code))
            raise
        self.api.request_log.add(_with_code(record, code))
        self._send_resource(code, rt, answer, options.warnings)

    def _resource_type(self, path: ResourcePath) -> ResourceType:
        rt = self.api.registry.lookup(path.group, path.version, path.plural)
        missing = ApiError(404, "NotFound", "the server could not find the requested resource")
        if rt is None:
            raise missing
        if rt.namespaced and path.namespace is None and path.name is not None:
            raise missing
        if not rt.namespaced and path.namespace is not None:
            raise missing
        if path.subresource is not None and not (path.subresource == "status" and rt.has_status):
            raise missing
        return rt

    def _resource_answer(
        self,
        verb: str,
        rt: ResourceType,
        path: ResourcePath,
        query: dict[str, str],
        *,
        body: bytes,
        options: WriteOptions,
    ) -> tuple[int, Obj]:
        objects = self.api.objects
        namespace = path.namespace or ""
        name = path.name or ""
        if verb == "get":
            return 200, objects.get(rt, namespace, name)
        if verb == "list":
            labels, fields = query.get("labelSelector"), query.get("fieldSelector")
            return 200, objects.list_objects(rt, path.namespace, labels, fields)
        if verb == "create":
            return 201, objects.create(rt, namespace, self._decoded_body(body), options)
        if verb == "update":
            return 200, objects.replace(
                rt,
                namespace,
                name,
                self._decoded_body(body),
                subresource=path.subresource,
                options=options,
            )
        if verb == "patch":
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            answer, created = objects.patch(
                rt,
                namespace,
                name,
                content_type,
                body,
                subresource=path.subresource,
                options=options,
            )
            return (201 if created else 200), answer
        if verb == "delete":
            answer, _gone = objects.delete(rt, namespace, name, _json(body) if body else None)
            return 200, answer  # also when finalizers keep it: kube-apiserver answers 200
        raise errors.method_not_allowed()

    def _decoded_body(self, body: bytes) -> Any:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type == protobuf.PROTOBUF:
            return protobuf.decode_object(body)
        return _json(body)

    def _send_resource(self, code: int, rt: ResourceType, answer: Obj, warnings: list[str]) -> None:
        headers = {}
        if warnings:
            headers["Warning"] = ", ".join(f"299 - {json.dumps(w)}" for w in warnings)
        if wants_table(self.headers.get("Accept", "")):
            answer = as_table(rt, answer)
        self._send_json(code, answer, headers)

    # --- watch ---------------------------------------------------------------------------

    def _watch(self, rt: ResourceType, namespace: str | None, query: dict[str, str]) -> None:
        matches = _combined(
            label_selector(query.get("labelSelector")),
            field_selector(query.get("fieldSelector"), supported_fields(rt.from_crd)),
        )
        requested = query.get("resourceVersion") or "0"
        if not requested.isdigit():
            raise errors.bad_request(f"invalid resource version {requested!r}")
        timeout = float(query.get("timeoutSeconds") or 0) or None
        store = self.api.store
        handle = store.open_watch()
        self._start_stream()
        try:
            since = self._watch_start(rt, namespace, matches, int(requested))
            self._stream_events(rt, namespace, matches, since, handle=handle, timeout=timeout)
        except WatchExpiredError:
            self._send_chunk({"type": "ERROR", "object": errors.expired().status()})
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            store.close_watch(handle)
        self._end_stream()

    def _watch_start(
        self, rt: ResourceType, namespace: str | None, matches: Matcher, requested: int
    ) -> int:
        store = self.api.store
        if requested != 0:
            store.check_not_expired(requested)
            return requested
        with store.lock:
            current = store.list_objects(rt.storage_key, namespace)
            since = store.resource_version
        for obj in current:
            if matches(obj):
                self._send_chunk({"type": "ADDED", "object": ObjectService.view(rt, obj)})
        return since

    def _stream_events(
        self,
        rt: ResourceType,
        namespace: str | None,
        matches: Matcher,
        since: int,
        *,
        handle: WatchHandle,
        timeout: float | None,
    ) -> None:
        deadline = time.monotonic() + timeout if timeout else None
        while deadline is None or time.monotonic() < deadline:
            wait = WATCH_POLL_SECONDS
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            events = self.api.store.wait_for_events(since, handle, wait)
            if events is None:
                return
            for event in events:
                since = event.resource_version
                translated = _translate(event, rt, namespace, matches)
                if translated is not None:
                    self._send_chunk(translated)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()

    def _send_chunk(self, event: Obj) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    # --- plain responses -----------------------------------------------------------------

    def _send_json(self, code: int, document: Obj, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(code, json.dumps(document).encode(), "application/json", headers)

    def _send_bytes(
        self, code: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


def _with_code(record: RequestRecord, code: int) -> RequestRecord:
    return dataclasses.replace(record, code=code)


def _verb(method: str, path: ResourcePath, query: dict[str, str]) -> str:
    if method == "GET" and path.name is None:
        return "watch" if _is_true(query.get("watch")) else "list"
    verbs = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    needs_name = method != "POST"
    if needs_name != (path.name is not None):
        raise errors.method_not_allowed()
    return verbs[method]


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as error:
        raise errors.bad_request(f"the request body is not valid JSON: {error}") from error


def _combined(first: Matcher, second: Matcher) -> Matcher:
    return lambda obj: first(obj) and second(obj)


def _translate(
    event: StoredEvent, rt: ResourceType, namespace: str | None, matches: Matcher
) -> Obj | None:
    """The event as this watch sees it; objects entering or leaving its selector are
    ADDED or DELETED, as with the real watch cache."""
    if event.storage_key != rt.storage_key:
        return None
    if namespace is not None and event.namespace != namespace:
        return None
    now_matches = matches(event.obj)
    was_matching = event.old is not None and matches(event.old)
    event_type = event.type
    if event_type == "MODIFIED" and now_matches != was_matching:
        event_type = "ADDED" if now_matches else "DELETED"
    elif not now_matches:
        return None
    return {"type": event_type, "object": ObjectService.view(rt, event.obj)}


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: ApiServer) -> None:
        super().__init__(address, _Handler)
        self.api = api


class ApiServer:
    """The sandbox API server. Use `start()`/`stop()` or a `with` block."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, history: int = 1000) -> None:
        self.host = host
        self._requested_port = port
        self.store = Store(history=history)
        self.registry = Registry()
        self.objects = ObjectService(self.store, self.registry)
        self.faults = Faults(self.store.drop_watches, self.store.expire_watches)
        self.request_log = RequestLog()
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        for namespace in ("default", "kube-system", "kube-public"):
            ensure_namespace(self.objects, namespace)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> ApiServer:
        if self._httpd is not None:
            return self
        self._httpd = _HttpServer((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sandbox-apiserver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.store.close()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd, self._thread = None, None

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the API server is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- setup helpers -------------------------------------------------------------------

    def write_kubeconfig(
        self, path: str | Path, context: str = "sandbox", namespace: str = "default"
    ) -> Path:
        """A kubeconfig for kubectl and `kubernetes.config.load_kube_config` (static token)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": "sandbox"}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": context, "user": context, "namespace": namespace},
                }
            ],
            "current-context": context,
            "preferences": {},
        }
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return target

    def create_namespace(self, name: str) -> None:
        ensure_namespace(self.objects, name)

    def install_crds(self, crds: Iterable[Obj]) -> None:
        """Create or replace CustomResourceDefinitions directly (not counted in request_log)."""
        crd_type = self.registry.lookup(CRD_GROUP, "v1", CRD_PLURAL)
        assert crd_type is not None
        for crd in crds:
            name = crd["metadata"]["name"]
            if self.store.get(crd_type.storage_key, "", name) is None:
                self.objects.create(crd_type, "", crd, WriteOptions())
            else:
                self.objects.replace(
                    crd_type, "", name, crd, subresource=None, options=WriteOptions()
                )

    def install_crd_files(self, paths: Iterable[str | Path]) -> None:
        self.install_crds(load_yaml_documents(paths))


def install_crd_files(target: ApiServer | str, paths: Iterable[str | Path]) -> None:
    """Install CRDs from YAML files into an ApiServer object, or over HTTP at a base URL."""
    if isinstance(target, ApiServer):
        target.install_crd_files(paths)
        return
    collection = f"{target.rstrip('/')}/apis/{CRD_GROUP}/v1/{CRD_PLURAL}"
    for crd in load_yaml_documents(paths):
        request = urllib.request.Request(
            f"{collection}/{crd['metadata']['name']}?fieldManager=canary-sandbox",
            data=yaml.safe_dump(crd).encode(),
            method="PATCH",
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


def serve(port: int, kubeconfig: str | None, crds: list[str] | None) -> None:
    """Run the sandbox API server with the Istio CRDs (plus `crds`) until SIGINT or SIGTERM."""
    server = ApiServer(port=port).start()
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.install_crd_files([*bundled_crd_paths(), *(crds or [])])
        if kubeconfig:
            server.write_kubeconfig(kubeconfig)
        print(f"sandbox API server listening on {server.url}", flush=True)
        if kubeconfig:
            print(f"kubeconfig written to {kubeconfig}", flush=True)
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="canary sandbox", description=serve.__doc__)
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--kubeconfig", default=None, help="write a kubeconfig to this file")
    parser.add_argument("--crd", action="append", default=[], help="extra CRD YAML file(s)")
    arguments = parser.parse_args(argv)
    try:
        serve(arguments.port, arguments.kubeconfig, arguments.crd)
    except (OSError, urllib.error.URLError) as error:
        print(f"canary sandbox: {error}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
