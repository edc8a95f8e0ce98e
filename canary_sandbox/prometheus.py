"""A real Prometheus, started for tests and `canary demo`, scraping local targets.

    with PrometheusProcess(targets=["127.0.0.1:9100"], scrape_interval="1s") as prometheus:
        ...  # prometheus.url answers queries; the targets' first samples are in

The binary is found on PATH; config and TSDB live in a temporary directory removed on exit.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class PrometheusNotFoundError(RuntimeError):
    """No `prometheus` binary on PATH."""


class PrometheusStartError(RuntimeError):
    """Prometheus did not become ready (or never scraped its targets) in time."""


def find_prometheus() -> str | None:
    """The path of the `prometheus` binary, or None when it is not installed."""
    return shutil.which("prometheus")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def target_address(target: str) -> str:
    """host:port of a scrape target given as `host:port` or `http://host:port/metrics`."""
    if "://" in target:
        return urllib.parse.urlsplit(target).netloc
    return target


def scrape_config(targets: Sequence[str], scrape_interval: str) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {
                "job_name": "sandbox",
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "static_configs": [{"targets": [target_address(t) for t in targets]}],
            }
        ],
    }


class PrometheusProcess:
    """A Prometheus child process on a free port of 127.0.0.1; a context manager."""

    def __init__(
        self,
        targets: Sequence[str] = (),
        scrape_interval: str = "1s",
        start_timeout: float = 30.0,
        binary: str | None = None,
    ) -> None:
        self.targets = list(targets)
        self.scrape_interval = scrape_interval
        self.start_timeout = start_timeout
        self.binary = binary
        self.port = 0
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self._process is None:
            raise RuntimeError("Prometheus is not running: call start() first")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> PrometheusProcess:
        binary = self.binary or find_prometheus()
        if binary is None:
            raise PrometheusNotFoundError(
                "no prometheus binary on PATH; install it (Debian: apt-get install prometheus)"
            )
        self._workdir = tempfile.TemporaryDirectory(prefix="canary-prometheus-")
        workdir = Path(self._workdir.name)
        config = workdir / "prometheus.yml"
        config.write_text(json.dumps(scrape_config(self.targets, self.scrape_interval)))
        self.port = free_port()
        self._process = self._launch(binary, workdir, config)
        try:
            self._wait_until_ready()
            self._wait_for_first_samples()
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, binary: str, workdir: Path, config: Path) -> subprocess.Popen[bytes]:
        command = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1h",
        ]
        with (workdir / "prometheus.log").open("wb") as log:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)

    def log_text(self) -> str:
        """What Prometheus wrote to stdout and stderr so far (for failure messages)."""
        if self._workdir is None:
            return ""
        path = Path(self._workdir.name) / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _wait_until_ready(self) -> None:
        self._wait(lambda: self._get("/-/ready") is not None, "become ready")

    def _wait_for_first_samples(self) -> None:
        if self.targets:
            self._wait(self._targets_up, f"scrape {', '.join(self.targets)}")

    def _targets_up(self) -> bool:
        body = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": "up == 1"}))
        if body is None:
            return False
        result = json.loads(body).get("data", {}).get("result", [])
        up = {series["metric"].get("instance") for series in result}
        return all(target_address(target) in up for target in self.targets)

    def _wait(self, condition: Any, what: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise PrometheusStartError(f"Prometheus exited early:\n{self.log_text()[-2000:]}")
            if condition():
                return
            time.sleep(0.1)
        raise PrometheusStartError(
            f"Prometheus did not {what} within {self.start_timeout:g}s:\n{self.log_text()[-2000:]}"
        )

    def _get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as response:
                return bytes(response.read()) if response.status == 200 else None
        except (OSError, urllib.error.URLError):
            return None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> PrometheusProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
