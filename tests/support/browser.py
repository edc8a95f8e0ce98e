"""A headless Debian chromium driven by selenium through chromedriver, for the tests of the
pages we serve or write (the dashboard, `backtest --html`). Nothing downloads a browser: the
binaries come from `support.binaries` (missing: a failure under CI=true, else a skip)."""

from __future__ import annotations

from typing import Any

from support.binaries import require_binary

CHROME_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",  # the tests may run as root, where chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1200,800",
    "--no-first-run",
    "--disable-extensions",
)


def chrome() -> Any:
    """A new selenium.webdriver.Chrome on /usr/bin/chromium; the caller quits it."""
    chromium = require_binary("chromium")
    chromedriver = require_binary("chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in CHROME_ARGUMENTS:
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(chromedriver))
