"""A tiny JSON client for the sandbox API server, for the demo and tests' set-up steps.

It speaks HTTP with urllib: the controller and CLI use the real `kubernetes` client through
`canary.kube`; this only seeds and pokes the sandbox the way a user's kubectl would. Given a TLS
context that authenticates (`ControlPlane.client()`), it pokes a real kube-apiserver the same
way, so that a test's set-up steps mean the same on both.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from canary.core.objects import Obj

_CORE_KINDS = {"Namespace": "namespaces", "Service": "services", "Event": "events"}
_PLURALS = {
    "Deployment": "deployments",
    "VirtualService": "virtualservices",
    "DestinationRule": "destinationrules",
    "Rollout": "rollouts",
    "Lease": "leases",
    **_CORE_KINDS,
}


class SandboxError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class SandboxClient:
    def __init__(
        self, url: str, timeout: float = 10.0, context: ssl.SSLContext | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.context = context

    # ------------------------------------------------------------ paths

    def path(self, api_version: str, kind: str, namespace: str | None, name: str = "") -> str:
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        where = f"/namespaces/{namespace}" if namespace and kind != "Namespace" else ""
        return f"{base}{where}/{_PLURALS[kind]}" + (f"/{name}" if name else "")

    def path_of(self, obj: Obj) -> str:
        meta = obj["metadata"]
        return self.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])

    # ------------------------------------------------------------ verbs

    def request(self, method: str, path: str, body: Any = None, content_type: str = "") -> Obj:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type or "application/json", "Accept": "application/json"}
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout, context=self.context
            ) as response:
                answer: Obj = json.load(response)
                return answer
        except urllib.error.HTTPError as error:
            try:
                message = json.load(error).get("message", error.reason)
            except ValueError:
                message = str(error.reason)
            raise SandboxError(error.code, str(message)) from None

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj:
        return self.request("GET", self.path(api_version, kind, namespace, name))

    def apply(self, obj: Obj) -> Obj:
        """Create the object, or merge its content over the existing one."""
        collection = self.path_of(obj).rsplit("/", 1)[0]
        try:
            return self.request("POST", collection, obj)
        except SandboxError as error:
            if error.code != 409:
                raise
        return self.request("PATCH", self.path_of(obj), obj, "application/merge-patch+json")

    def merge_patch(self, obj_path: str, patch: Obj) -> Obj:
        return self.request("PATCH", obj_path, patch, "application/merge-patch+json")

    def delete(self, obj_path: str) -> Obj:
        return self.request("DELETE", obj_path)

    def set_deployment_ready(self, namespace: str, name: str, ready: bool = True) -> Obj:
        """Play the Deployment controller: report every replica ready (or none)."""
        deployment = self.get("apps/v1", "Deployment", namespace, name)
        replicas = int(deployment.get("spec", {}).get("replicas", 1))
        count = replicas if ready else 0
        status = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": count,
            "availableReplicas": count,
        }
        path = self.path("apps/v1", "Deployment", namespace, name) + "/status"
        return self.merge_patch(path, {"status": status})
