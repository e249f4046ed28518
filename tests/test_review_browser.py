"""The HTML report in a real headless browser: every section shown, a click seeks the player.

Uses Debian's ``chromium`` and ``chromium-driver`` through Selenium (no browser download:
the executables are given). Skips cleanly where either, or Selenium, is not installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from endostream.cli import main
from helpers.review import FPS, LAYOUT, make_procedure

webdriver = pytest.importorskip("selenium.webdriver")
pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")

BROWSERS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
DRIVERS = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
#: Seconds to wait for the page, the video's metadata and a seek.
WAIT_S = 20


def _first(paths, name):
    found = next((p for p in paths if Path(p).is_file()), None) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (apt-get install chromium chromium-driver)")
    return found


@pytest.fixture
def browser(tmp_path):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _first(BROWSERS, "chromium")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--mute-audio", "--window-size=1100,900",
                f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(_first(DRIVERS, "chromedriver")),
                              options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def test_report_shows_every_section_and_a_click_seeks_the_player(tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    t = make_procedure(tmp_path)
    out = tmp_path / "report.html"
    assert main(["report", str(t.sections), "--csv", str(t.csv), "--out", str(out)]) == 0
    browser.get(out.as_uri())
    rows = browser.find_elements(By.CSS_SELECTOR, "#sections tbody tr")
    assert len(rows) == len(LAYOUT)
    assert all(r.is_displayed() for r in rows)
    shown = [r.find_element(By.CSS_SELECTOR, ".label").text for r in rows]
    assert shown == ["Ear", "Unusable", "Nose", "Vocal folds"]
    assert all(browser.execute_script("return arguments[0].naturalWidth > 0", img)
               for img in browser.find_elements(By.CSS_SELECTOR, "img"))
    wait = WebDriverWait(browser, WAIT_S)
    wait.until(lambda d: d.execute_script(
        "return document.getElementById('player').readyState >= 1"))
    for index in (2, 3, 1):
        start = LAYOUT[index][1] / FPS
        rows[index].click()
        wait.until(lambda d, s=start: s - 0.05 <= d.execute_script(
            "return document.getElementById('player').currentTime") <= s + 1.0)
    cues = browser.execute_script(
        "var t = document.getElementById('player').textTracks[0];"
        "t.mode = 'hidden'; return t.cues ? t.cues.length : -1")
    assert cues in (-1, len(LAYOUT))  # the chapter track, where the browser loaded it
