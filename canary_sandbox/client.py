"""A tiny JSON client for an API server, for the demo's and the tests' set-up steps.

It speaks HTTP with urllib: the controller and CLI use the real `kubernetes` client through
`canary.kube`; this only seeds and pokes the API the way a user's kubectl would. Built on a URL
it talks to the sandbox (plain HTTP, no credentials); `from_kubeconfig` talks to whatever
server a kubeconfig names, a real kube-apiserver included (TLS with the kubeconfig's CA, a
client certificate or a bearer token).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

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
        self,
        url: str,
        timeout: float = 10.0,
        context: ssl.SSLContext | None = None,
        *,
        token: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.context = context
        self.token = token

    @classmethod
    def from_kubeconfig(cls, path: str | Path, timeout: float = 10.0) -> SandboxClient:
        """A client for the current context's server, with that context's credentials."""
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        context = _named(config, "contexts", config["current-context"])
        cluster = _named(config, "clusters", context["cluster"])
        user = _named(config, "users", context["user"])
        url = str(cluster["server"])
        if not url.startswith("https://"):
            return cls(url, timeout, token=user.get("token"))
        tls = ssl.create_default_context(cadata=_pem(cluster, "certificate-authority"))
        if "client-certificate-data" in user or "client-certificate" in user:
            _load_client_certificate(tls, user)
        return cls(url, timeout, context=tls, token=user.get("token"))

    @property
    def reports_workloads(self) -> bool:
        """Whether nothing but us reports a Deployment's status: the sandbox (plain HTTP; it
        runs no controllers) does not, a real control plane (kube-apiserver has served no
        plain HTTP since 1.20) has its Deployment controller and kwok's Pods."""
        return not self.url.startswith("https://")

    def open(self, request: urllib.request.Request | str, timeout: float | None = None) -> Any:
        """urlopen with this client's TLS context and token (for watches and raw reads)."""
        if isinstance(request, str):
            request = urllib.request.Request(self.url + request)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        return urllib.request.urlopen(
            request, timeout=self.timeout if timeout is None else timeout, context=self.context
        )

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
            with self.open(request) as response:
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


def _named(config: Obj, section: str, name: str) -> Obj:
    for entry in config.get(section) or []:
        if entry.get("name") == name:
            found: Obj = entry.get(section.removesuffix("s")) or {}
            return found
    raise ValueError(f"the kubeconfig has no {section.removesuffix('s')} named {name!r}")


def _pem(where: Obj, key: str) -> str:
    """A PEM given inline (`<key>-data`, base64) or as a file (`<key>`)."""
    if f"{key}-data" in where:
        return base64.b64decode(where[f"{key}-data"]).decode()
    return Path(where[key]).read_text(encoding="utf-8")


def _load_client_certificate(tls: ssl.SSLContext, user: Obj) -> None:
    """ssl loads a certificate and key from files only: a private directory, removed after."""
    with tempfile.TemporaryDirectory(prefix="canary-client-") as directory:
        certificate, key = Path(directory, "client.crt"), Path(directory, "client.key")
        for path, text in ((certificate, _pem(user, "client-certificate")),
                           (key, _pem(user, "client-key"))):  # fmt: skip
            path.write_text(text, encoding="utf-8")
            os.chmod(path, 0o600)
        tls.load_cert_chain(str(certificate), str(key))
