"""Debian's headless chromium through Selenium, for the report's browser tests.

No browser is downloaded: the executables are Debian's (``apt-get install chromium
chromium-driver``); :func:`chrome` skips the test where either is missing. Each browser
gets a fresh profile, and optionally a download folder (Chrome preferences) so a test can
read what the page saved.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

BROWSERS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
DRIVERS = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
#: Seconds to wait for a page, the video's metadata, a seek or a download.
WAIT_S = 20


def _first(paths, name):
    found = next((p for p in paths if Path(p).is_file()), None) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (apt-get install chromium chromium-driver)")
    return found


def chrome(profile: Path, *, width: int = 1100, height: int = 900,
           downloads: Path | None = None):
    """A started headless chromium (the caller quits it)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _first(BROWSERS, "chromium")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--mute-audio", f"--window-size={width},{height}",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    if downloads is not None:
        options.add_experimental_option("prefs", {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "download.directory_upgrade": True,
            "safebrowsing.enabled": False,
        })
    driver = webdriver.Chrome(service=Service(_first(DRIVERS, "chromedriver")),
                              options=options)
    driver.set_page_load_timeout(WAIT_S)
    return driver
