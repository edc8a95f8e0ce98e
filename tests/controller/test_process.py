"""The controller as a process: JSON logs, /healthz, /readyz, /metrics, clean SIGTERM.

Covers: `canary controller` against the sandbox logs JSON lines (one event a line, with
`rollout` and `namespace` bound), serves its health and readiness probes and its own
Prometheus metrics (phase, weight, reconcile duration, API requests), and exits 0 on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path

from support.polling import wait_until

from canary_sandbox.stack import ControllerProcess, example_release, sandbox_with_example

PROGRESSING = 'canary_rollout_phase{namespace="shop",phase="Progressing",rollout="ui"} 1.0'


PATIENCE_SECONDS = 20.0  # a guard against hanging, never an assertion on speed


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_logs_probes_metrics_and_sigterm(tmp_path: Path) -> None:
    with sandbox_with_example(tmp_path) as (_api, client):
        controller = ControllerProcess(tmp_path / "kubeconfig", tmp_path / "controller.log")
        with controller:
            started = wait_until(
                lambda: [e for e in json_lines(controller.logs()) if "metrics_addr" in e],
                "the controller to log its metrics address",
                PATIENCE_SECONDS,
                every=0.1,
            )
            base = f"http://{started[0]['metrics_addr']}"
            assert wait_until(
                lambda: get(f"{base}/healthz")[0] == 200,
                "/healthz 200",
                PATIENCE_SECONDS,
                every=0.1,
            )
            assert wait_until(
                lambda: get(f"{base}/readyz")[0] == 200, "/readyz 200", PATIENCE_SECONDS, every=0.1
            )
            client.apply(example_release())
            wait_until(
                lambda: (
                    client.get("canary.dev/v1alpha1", "Rollout", "shop", "ui")
                    .get("status", {})
                    .get("phase")
                ),
                "a phase in the Rollout's status",
                PATIENCE_SECONDS,
                every=0.1,
            )
            metrics = wait_until(
                lambda: (text := get(f"{base}/metrics")[1]) and PROGRESSING in text and text,
                "the Progressing phase in /metrics",
                PATIENCE_SECONDS,
                every=0.1,
            )
            assert "canary_reconcile_duration_seconds_count" in metrics
            assert "canary_kube_api_requests_total" in metrics
            assert controller.process is not None
            controller.process.send_signal(signal.SIGTERM)
            assert controller.process.wait(timeout=15) == 0
        events = json_lines(controller.logs())
        assert all({"event", "level", "timestamp"} <= set(e) for e in events)
        assert any(e.get("rollout") == "ui" and e.get("namespace") == "shop" for e in events)
        assert events[-1]["event"] == "controller stopped"
