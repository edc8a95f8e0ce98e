"""`canary dashboard` in a real browser (Debian's chromium, headless, through chromedriver and
selenium) against a live stack: the sandbox API with examples/ui, the traffic simulator, the
controller as a process reading the simulator's metrics (`--metrics-source scrape`, as `canary
demo` does without Prometheus), and the dashboard's server.

Aspects: the list shows the Rollout; a release advances on screen (the stage shown changes); a
gate chart draws an SVG with points; the Abort button aborts the release (on screen and in the
cluster) and shows the controller's answer; an API that stops answering shows the error banner
over the last data, which clears when the API is back; with `--prometheus` (a real Prometheus
scraping the simulator) a gate chart also draws its line from the range data.

Sandbox only: the last test takes the API offline, which the real control plane (the whole
session's) cannot be; the API the page reads is tested on both in test_dashboard_server.py.
Nothing asserts on time: every wait polls (WebDriverWait) with a generous guard.

`CANARY_DASHBOARD_SCREENSHOTS=docs pytest tests/cli/test_dashboard_browser.py -k screenshots`
writes docs/dashboard-list.png and docs/dashboard-rollout.png.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.binaries import require_binary
from support.browser import chrome

from canary.cli.dashboard.server import DashboardServer, start_in_thread
from canary.cli.session import Target, open_session
from canary.core.model import API_VERSION, KIND
from canary_sandbox.apiserver import ApiServer
from canary_sandbox.client import SandboxClient
from canary_sandbox.prometheus import PrometheusProcess
from canary_sandbox.stack import (
    NAMESPACE,
    SERVICE,
    ControllerProcess,
    fast_rollout,
    install_example,
    sandbox_with_example,
    simulated_traffic,
)
from canary_sandbox.traffic import TrafficSimulator

pytestmark = pytest.mark.slow

GUARD_SECONDS = 120.0  # only against hanging forever
INTERVAL = 1.0  # the analysis interval of the releases here
Obj = dict[str, Any]


@dataclass
class Live:
    api: ApiServer
    client: SandboxClient
    simulator: TrafficSimulator
    controller: ControllerProcess
    dashboard: DashboardServer
    driver: Any  # selenium.webdriver.Chrome
    kubeconfig: Path

    def release(self, change: Callable[[Obj], None] | None = None) -> None:
        """examples/ui as in git (no Rollout, stable v1), then the release of v2 (fast)."""
        install_example(self.client)
        rollout = fast_rollout(INTERVAL, self.simulator.url)
        if change is not None:
            change(rollout["spec"])
        uid = self.client.apply(rollout)["metadata"]["uid"]

        def picked_up(_: Any) -> bool:  # by the controller: this Rollout, not the last test's
            current = self.client.get(API_VERSION, KIND, NAMESPACE, SERVICE)
            return bool(current["metadata"]["uid"] == uid and self.status().get("phase"))

        self.wait(picked_up)

    def status(self) -> Obj:
        status: Obj = self.client.get(API_VERSION, KIND, NAMESPACE, SERVICE).get("status") or {}
        return status

    def wait(self, condition: Callable[[Any], Any]) -> Any:
        """`condition(driver)` once truthy; the list is drawn anew on every change, so an
        element found a moment ago may be gone (stale): that is asked again, not a failure."""
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        wait = WebDriverWait(
            self.driver,
            GUARD_SECONDS,
            poll_frequency=0.1,
            ignored_exceptions=(StaleElementReferenceException,),
        )
        return wait.until(condition)

    def text(self, element_id: str) -> str:
        from selenium.webdriver.common.by import By

        return str(self.driver.find_element(By.ID, element_id).text)

    def open_list(self) -> None:
        self.load(self.dashboard.url)

    def open_rollout(self) -> None:
        self.load(f"{self.dashboard.url}#/{NAMESPACE}/{SERVICE}")

    def load(self, url: str) -> None:
        """A fresh page: the same URL again would only be a same-document navigation that
        keeps what the last test's page showed."""
        self.driver.get("about:blank")
        self.driver.get(url)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    driver = chrome()
    workdir = tmp_path_factory.mktemp("dashboard")
    kubeconfig = workdir / "kubeconfig"
    with contextlib.ExitStack() as exits:
        exits.callback(driver.quit)
        api, client = exits.enter_context(sandbox_with_example(workdir))
        simulator = exits.enter_context(simulated_traffic(kubeconfig))
        scrape = ("--metrics-source", "scrape")
        controller = exits.enter_context(
            ControllerProcess(kubeconfig, workdir / "controller.log", scrape)
        )
        session = open_session(Target(str(kubeconfig), None, NAMESPACE))
        dashboard = start_in_thread(session)
        exits.callback(dashboard.close)
        yield Live(api, client, simulator, controller, dashboard, driver, kubeconfig)


@pytest.fixture
def env(live: Live) -> Iterator[Live]:
    live.api.faults.reset()
    yield live
    live.api.faults.reset()


def row(live: Live) -> Any:
    from selenium.webdriver.common.by import By

    rows = live.driver.find_elements(By.CSS_SELECTOR, f'#rollouts tr[data-key="{NAMESPACE}/ui"]')
    return rows[0] if rows else None


def long_mirror(spec: Obj) -> None:
    spec["stages"]["mirror"]["duration"] = "10m"  # only a person moves it on


def test_the_list_shows_the_rollout_and_the_release_advancing(env: Live) -> None:
    from selenium.webdriver.common.by import By

    env.open_list()
    env.release()
    seen: list[str] = []

    def advanced(_: Any) -> bool:
        found = row(env)
        if found is None:
            return False
        stage = found.find_element(By.CSS_SELECTOR, "td.stage").text
        if not seen or seen[-1] != stage:
            seen.append(stage)
        return len({s for s in seen if s != "-"}) >= 3

    env.wait(advanced)
    env.wait(lambda d: row(env).find_element(By.CSS_SELECTOR, "td.name").text == "ui")
    stages = [s for s in seen if s != "-"]
    order = ["mirror", "headerCanary", "split", "release"]
    assert [order.index(s) for s in stages] == sorted(order.index(s) for s in stages), seen


def test_a_gate_chart_draws_the_checks(env: Live) -> None:
    from selenium.webdriver.common.by import By

    env.release(long_mirror)
    env.open_rollout()
    env.wait(lambda d: env.text("detail-stage") == "mirror")
    points = env.wait(
        lambda d: d.find_elements(
            By.CSS_SELECTOR, '#gate-charts [data-gate="success-rate"] svg circle.cc-point'
        )
    )
    assert float(points[0].get_attribute("data-value")) > 0
    threshold = env.driver.find_element(
        By.CSS_SELECTOR, '#gate-charts [data-gate="success-rate"] svg .cc-threshold'
    )
    assert float(threshold.get_attribute("data-value")) == 99.0
    assert env.driver.find_elements(By.CSS_SELECTOR, "#traffic-chart svg .cc-series path")


def test_with_prometheus_a_gate_chart_draws_its_line(env: Live) -> None:
    """`--prometheus`: a real Prometheus scraping the simulator; the gate chart of a second
    dashboard server draws the line measured from its range data beside the checks."""
    from selenium.webdriver.common.by import By

    require_binary("prometheus")
    with PrometheusProcess([env.simulator.address], scrape_interval="1s") as prometheus:
        session = open_session(Target(str(env.kubeconfig), None, NAMESPACE))
        dashboard = start_in_thread(session, prometheus=prometheus.url)
        try:
            env.release(long_mirror)
            env.load(f"{dashboard.url}#/{NAMESPACE}/{SERVICE}")
            env.wait(lambda d: env.text("detail-stage") == "mirror")
            line = '#gate-charts [data-gate="success-rate"] .cc-series[data-series="Prometheus"]'
            path = env.wait(
                lambda d: next(
                    (
                        found
                        for found in d.find_elements(By.CSS_SELECTOR, f"{line} path")
                        if found.get_attribute("d").count("L") >= 2
                    ),
                    None,
                )
            )
            assert path.get_attribute("d").startswith("M")
            assert not env.driver.find_element(By.ID, "range-note").is_displayed()
        finally:
            dashboard.close()


def test_the_abort_button_aborts_the_release(env: Live) -> None:
    from selenium.webdriver.common.by import By

    env.release(long_mirror)
    env.open_rollout()
    env.wait(lambda d: env.text("detail-stage") == "mirror")
    env.driver.find_element(By.ID, "action-abort").click()
    env.wait(lambda d: env.text("detail-phase") == "Aborted")
    result = env.wait(
        lambda d: (
            d.find_element(By.ID, "action-result")
            if d.find_element(By.ID, "action-result").get_attribute("data-ok")
            else None
        )
    )
    assert result.get_attribute("data-ok") == "true", result.text
    assert result.text.startswith(f"Rollout {NAMESPACE}/{SERVICE}: ")
    status = env.status()
    assert status["phase"] == "Aborted"
    assert status["handledRequest"]["action"] == "abort"
    assert status["canaryWeight"] == 0


def test_an_api_outage_shows_the_banner_over_the_last_data(env: Live) -> None:
    from selenium.webdriver.common.by import By

    env.release(long_mirror)
    env.open_rollout()
    env.wait(lambda d: env.text("detail-stage") == "mirror")
    banner = env.driver.find_element(By.ID, "api-error")
    assert not banner.is_displayed()
    env.api.faults.offline = True
    env.wait(lambda d: banner.is_displayed())
    assert "unreachable" in banner.text
    assert env.text("detail-stage") == "mirror"  # the last data stays
    env.api.faults.offline = False
    env.wait(lambda d: not banner.is_displayed())


@pytest.mark.skipif(
    not os.environ.get("CANARY_DASHBOARD_SCREENSHOTS"),
    reason="writes the docs' screenshots: set CANARY_DASHBOARD_SCREENSHOTS to a directory",
)
def test_screenshots(env: Live) -> None:
    """Not a test of behaviour: the pictures in README.md, of a release in its split stage."""
    from selenium.webdriver.common.by import By

    target = Path(os.environ["CANARY_DASHBOARD_SCREENSHOTS"])
    target.mkdir(parents=True, exist_ok=True)

    def slow_split(spec: Obj) -> None:
        spec["stages"]["split"]["interval"] = "4s"

    env.release(slow_split)
    viewport = {"width": 1200, "height": 800, "deviceScaleFactor": 1, "mobile": False}
    env.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", viewport)
    env.open_list()
    env.wait(lambda d: row(env) is not None and "split" in row(env).text)
    env.wait(lambda d: row(env).find_element(By.CSS_SELECTOR, "td.step").text.startswith("3"))
    env.driver.save_screenshot(str(target / "dashboard-list.png"))
    env.open_rollout()
    env.wait(lambda d: env.text("detail-step").startswith("4"))
    env.wait(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#gate-charts svg circle.cc-point")) >= 8
    )
    env.driver.save_screenshot(str(target / "dashboard-rollout.png"))
    env.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
