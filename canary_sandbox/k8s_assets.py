"""The real control plane's binaries and CRDs: found, or built from the Go modules in
tools/controlplane, and cached outside the repository.

Binaries (`BINARIES`): kube-apiserver, kube-controller-manager, kube-scheduler and kubectl (Go
module tools/controlplane/kube: k8s.io/kubernetes at one release, every staging module pinned by
`replace`), etcd (tools/controlplane/etcd) and kwok (tools/controlplane/kwok). Each is looked up

1. in `$KUBEBUILDER_ASSETS` (the envtest convention: a directory holding at least kube-apiserver,
   etcd and kubectl; put kube-controller-manager, kube-scheduler and kwok there too to build
   nothing), then
2. in the cache `${XDG_CACHE_HOME:-~/.cache}/canary/k8s/<kubernetes version>/bin`, where
   `ensure_assets()` builds what is missing with `go build`. A stamp per Go module (a hash of its
   go.mod, go.sum, tools.go and the linker flags) says whether the cached binaries are the ones
   these files build; a changed pin builds them again.

Helm (`HELM`: helm.sh/helm/v4 at the release tools/helm/go.mod pins) is built the same way, by
`ensure_helm()`, into `${XDG_CACHE_HOME:-~/.cache}/canary/helm/<helm version>/bin`, for the tests
of the chart deploy/helm/canary; `$CANARY_HELM` names a helm binary to use instead.

CRDs: Istio's (istio.io/api, `kubernetes/customresourcedefinitions.gen.yaml`) and Gateway API's
standard channel (sigs.k8s.io/gateway-api, `config/crd/standard/`), at the versions pinned in
tools/controlplane/crds/go.mod (checked against its go.sum), fetched with `go mod download -json`
and copied into `${XDG_CACHE_HOME:-~/.cache}/canary/crds/`. None of them is copied into the repo.

    python -m canary_sandbox.k8s_assets           # build what is missing; print where it is
    python -m canary_sandbox.k8s_assets --check   # build nothing; exit 1 when something is missing
    python -m canary_sandbox.k8s_assets --helm [--check]   # the same for helm; print its path
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "tools" / "controlplane"
ENVTEST_VARIABLE = "KUBEBUILDER_ASSETS"
HELM_VARIABLE = "CANARY_HELM"
ENVTEST_REQUIRED = ("kube-apiserver", "etcd", "kubectl")
Log = Callable[[str], None]


class AssetsMissingError(RuntimeError):
    """A binary or CRD file is missing and may not (or cannot) be built."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "canary"


def bin_cache() -> Path:
    return cache_root() / "k8s" / kubernetes_version() / "bin"


def helm_bin_cache() -> Path:
    return cache_root() / "helm" / required_version(REPO / "tools" / "helm", HELM_MODULE) / "bin"


@dataclass(frozen=True)
class GoModule:
    """One build module under tools/ and the programs it builds."""

    directory: str
    programs: tuple[tuple[str, str], ...]  # (binary name, main package)
    kubernetes_version_flags: bool = False
    tools: Path = TOOLS  # the folder holding `directory`
    cache: Callable[[], Path] = bin_cache  # where its binaries and stamp go
    version_variable: tuple[str, str] | None = None  # (module, -X variable set to its version)

    @property
    def path(self) -> Path:
        return self.tools / self.directory

    @property
    def relative_path(self) -> str:
        return str(self.path.relative_to(REPO))

    @property
    def binaries(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.programs)


HELM_MODULE = "helm.sh/helm/v4"
HELM = GoModule(
    "helm",
    (("helm", f"{HELM_MODULE}/cmd/helm"),),
    tools=REPO / "tools",
    cache=helm_bin_cache,
    version_variable=(HELM_MODULE, f"{HELM_MODULE}/internal/version.version"),
)
MODULES = (
    GoModule(
        "kube",
        (
            ("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"),
            ("kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager"),
            ("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler"),
            ("kubectl", "k8s.io/kubernetes/cmd/kubectl"),
        ),
        kubernetes_version_flags=True,
    ),
    GoModule("etcd", (("etcd", "go.etcd.io/etcd/server/v3"),)),
    GoModule("kwok", (("kwok", "sigs.k8s.io/kwok/cmd/kwok"),)),
)
BINARIES = tuple(name for module in MODULES for name in module.binaries)
CRD_MODULE = TOOLS / "crds"
ISTIO_MODULE, ISTIO_CRDS = "istio.io/api", "kubernetes/customresourcedefinitions.gen.yaml"
GATEWAY_MODULE, GATEWAY_CRDS = "sigs.k8s.io/gateway-api", "config/crd/standard"


def required_version(module_dir: Path, module: str) -> str:
    """The version of `module` that the go.mod in `module_dir` requires."""
    text = (module_dir / "go.mod").read_text(encoding="utf-8")
    found = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.MULTILINE)
    if found is None:
        raise AssetsMissingError(f"{module_dir / 'go.mod'} does not require {module}")
    return found.group(1)


def kubernetes_version() -> str:
    return required_version(TOOLS / "kube", "k8s.io/kubernetes")


def version_ldflags(version: str, built: str) -> list[str]:
    """The -X flags Kubernetes' hack/lib/version.sh sets, for a build from the module archive
    (no git commit: tree state "archive"); `built` is the release's commit time."""
    major, minor = re.match(r"v(\d+)\.(\d+)", version).groups()  # type: ignore[union-attr]
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "archive",
        "buildDate": built,
    }
    return [
        f"-X {package}.{name}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for name, value in values.items()
    ]


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise AssetsMissingError(
            "Go is needed to build the control plane (kube-apiserver, etcd, kwok, ...): "
            f"install Go 1.25 or newer, or set {ENVTEST_VARIABLE} to a directory holding "
            f"{', '.join(BINARIES)}"
        )
    return go


def _go_json(args: Sequence[str], cwd: Path) -> list[dict[str, str]]:
    """Run a `go ... -json` command; its concatenated JSON objects."""
    result = subprocess.run(
        [_go(), *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=600
    )
    if result.returncode != 0:
        raise AssetsMissingError(f"`go {' '.join(args)}` failed in {cwd}: {result.stderr.strip()}")
    decoder, text, objects = json.JSONDecoder(), result.stdout.strip(), []
    while text:
        obj, end = decoder.raw_decode(text)
        objects.append(obj)
        text = text[end:].lstrip()
    return objects


def _module_info(module_dir: Path, module: str) -> dict[str, str]:
    [info] = _go_json(["mod", "download", "-json", module], module_dir)
    if info.get("Error"):
        raise AssetsMissingError(f"cannot download {module}: {info['Error']}")
    return info


def _ldflags(module: GoModule) -> list[str]:
    flags = ["-s", "-w"]
    if module.kubernetes_version_flags:
        version = kubernetes_version()
        built = _module_info(module.path, "k8s.io/kubernetes").get("Time", "")
        flags += version_ldflags(version, built)
    if module.version_variable is not None:
        versioned, variable = module.version_variable
        flags.append(f"-X {variable}={required_version(module.path, versioned)}")
    return flags


def _stamp(module: GoModule) -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "tools.go"):
        digest.update(name.encode() + b"\0" + (module.path / name).read_bytes() + b"\0")
    digest.update(repr((module.programs, module.kubernetes_version_flags)).encode())
    if module.version_variable is not None:
        digest.update(repr(module.version_variable).encode())
    return digest.hexdigest()[:16]


def _stamp_file(module: GoModule) -> Path:
    return module.cache() / f".stamp-{module.directory}"


def _cached(module: GoModule) -> bool:
    stamp = _stamp_file(module)
    return (
        stamp.is_file()
        and stamp.read_text().strip() == _stamp(module)
        and all((module.cache() / name).is_file() for name in module.binaries)
    )


def envtest_dir() -> Path | None:
    value = os.environ.get(ENVTEST_VARIABLE)
    return Path(value) if value else None


def find_binary(name: str) -> Path | None:
    """Where `name` is ($KUBEBUILDER_ASSETS first, then the cache), without building it."""
    envtest = envtest_dir()
    if envtest is not None and (envtest / name).is_file():
        return envtest / name
    module = next(module for module in MODULES if name in module.binaries)
    return bin_cache() / name if _cached(module) else None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder at a time per cache (two sessions may start `./dev test` together)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(module: GoModule, log: Log) -> None:
    target = module.cache()
    target.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log(f"building {', '.join(module.binaries)} (Go module {module.relative_path})")
    with tempfile.TemporaryDirectory(dir=target, prefix=".build-") as scratch:
        for name, package in module.programs:  # one `go build` each: -o names the binary
            command = [
                _go(),
                "build",
                "-trimpath",
                f"-ldflags={' '.join(_ldflags(module))}",
                "-o",
                str(Path(scratch) / name),
                package,
            ]
            env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
            result = subprocess.run(
                command, cwd=module.path, env=env, capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise AssetsMissingError(
                    f"`go build {package}` failed in {module.relative_path}: "
                    f"{result.stderr.strip()[-2000:]}"
                )
        for name in module.binaries:
            os.replace(Path(scratch) / name, target / name)
    _stamp_file(module).write_text(_stamp(module) + "\n")
    log(f"built {', '.join(module.binaries)} in {time.monotonic() - started:.0f}s")


@dataclass(frozen=True)
class Assets:
    """Paths of every binary of the control plane and of the third-party CRD files."""

    binaries: dict[str, Path]
    crd_files: tuple[Path, ...]

    def __getitem__(self, name: str) -> Path:
        return self.binaries[name]

    @property
    def kubectl(self) -> Path:
        return self.binaries["kubectl"]


def ensure_binaries(build: bool = True, log: Log = print) -> dict[str, Path]:
    """Every binary's path, building the modules whose binaries are missing (when `build`)."""
    found: dict[str, Path] = {}
    for module in MODULES:
        paths = {name: find_binary(name) for name in module.binaries}
        if any(path is None for path in paths.values()):
            if not build:
                missing = ", ".join(name for name, path in paths.items() if path is None)
                raise AssetsMissingError(
                    f"{missing} not built: run `./dev cluster` (or `python -m "
                    f"canary_sandbox.k8s_assets`) to build them, or set {ENVTEST_VARIABLE}"
                )
            with _locked(cache_root() / "k8s" / ".build.lock"):
                if not _cached(module):  # another builder may have finished meanwhile
                    _build(module, log)
            paths = {name: find_binary(name) for name in module.binaries}
        found.update({name: path for name, path in paths.items() if path is not None})
    return found


def ensure_helm(build: bool = True, log: Log = print) -> Path:
    """The helm binary: `$CANARY_HELM`, or the cached build of tools/helm (built when missing,
    if `build`)."""
    named = os.environ.get(HELM_VARIABLE)
    if named:
        if not Path(named).is_file():
            raise AssetsMissingError(f"{HELM_VARIABLE}={named} is not a file")
        return Path(named)
    if not _cached(HELM):
        if not build:
            raise AssetsMissingError(
                "helm not built: run `./dev test` (or `python -m canary_sandbox.k8s_assets "
                f"--helm`) to build it from tools/helm, or set {HELM_VARIABLE}"
            )
        with _locked(cache_root() / "helm" / ".build.lock"):
            if not _cached(HELM):
                _build(HELM, log)
    return HELM.cache() / "helm"


def crd_cache() -> Path:
    istio = required_version(CRD_MODULE, ISTIO_MODULE)
    gateway = required_version(CRD_MODULE, GATEWAY_MODULE)
    return cache_root() / "crds" / f"istio-{istio}_gateway-api-{gateway}"


def ensure_crd_files(fetch: bool = True, log: Log = print) -> tuple[Path, ...]:
    """Istio's CRD file, then Gateway API's standard CRD files, from the cache or fetched."""
    target = crd_cache()
    done = target / ".complete"
    if not done.is_file():
        if not fetch:
            raise AssetsMissingError(
                f"the Istio and Gateway API CRDs are not in {target}: run `python -m "
                "canary_sandbox.k8s_assets` (it needs Go to fetch them)"
            )
        with _locked(cache_root() / "crds" / ".fetch.lock"):
            if not done.is_file():
                _fetch_crds(target, log)
    return tuple(sorted(p for p in target.rglob("*.yaml")))


def _fetch_crds(target: Path, log: Log) -> None:
    started = time.monotonic()
    istio = Path(_module_info(CRD_MODULE, ISTIO_MODULE)["Dir"])
    gateway = Path(_module_info(CRD_MODULE, GATEWAY_MODULE)["Dir"])
    shutil.rmtree(target, ignore_errors=True)
    (target / "1-istio").mkdir(parents=True)
    (target / "2-gateway-api").mkdir(parents=True)
    shutil.copyfile(istio / ISTIO_CRDS, target / "1-istio" / Path(ISTIO_CRDS).name)
    for source in sorted((gateway / GATEWAY_CRDS).glob("*.yaml")):
        shutil.copyfile(source, target / "2-gateway-api" / source.name)
    (target / ".complete").write_text("")
    log(f"fetched the Istio and Gateway API CRDs in {time.monotonic() - started:.1f}s")


def ensure_assets(build: bool = True, log: Log = print) -> Assets:
    """Binaries and CRD files, built and fetched when missing (unless `build` is False)."""
    binaries = ensure_binaries(build, log)
    return Assets(binaries, ensure_crd_files(build, log))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m canary_sandbox.k8s_assets", description=(
        "Build (or find) the real control plane's binaries and fetch its CRDs."))  # fmt: skip
    parser.add_argument("--check", action="store_true", help="build nothing; exit 1 if missing")
    parser.add_argument("--print-bin-dir", action="store_true", help="print kubectl's directory")
    parser.add_argument("--helm", action="store_true", help="helm alone; print its path")
    arguments = parser.parse_args(argv)

    def log(line: str) -> None:
        print(f"==> {line}", file=sys.stderr, flush=True)

    started = time.monotonic()
    if arguments.helm:
        try:
            print(ensure_helm(build=not arguments.check, log=log))
        except AssetsMissingError as error:
            print(f"helm: {error}", file=sys.stderr)
            return 1
        return 0
    try:
        assets = ensure_assets(build=not arguments.check, log=log)
    except AssetsMissingError as error:
        print(f"control plane: {error}", file=sys.stderr)
        return 1
    if arguments.print_bin_dir:
        print(assets.kubectl.parent)
    else:
        for name, path in assets.binaries.items():
            print(f"{name:24} {path}")
        print(f"{'crds':24} {crd_cache()}")
        log(f"control plane assets ready in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
