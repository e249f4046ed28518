"""The HTML report in a real headless browser: every section shown, a click seeks the player.

Uses Debian's ``chromium`` and ``chromium-driver`` through Selenium (no browser download:
the executables are given). Skips cleanly where either, or Selenium, is not installed.
"""

from __future__ import annotations

import shutil

import pytest

from endostream.cli import main
from endostream.review.report import clock
from helpers.browser import WAIT_S, chrome
from helpers.review import FPS, LAYOUT, make_procedure

webdriver = pytest.importorskip("selenium.webdriver")
pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")


@pytest.fixture
def browser(tmp_path):
    driver = chrome(tmp_path / "chrome-profile")
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


#: A phone's CSS width (iPhone 12-15), a tablet's or narrow window's, and a desktop's.
PHONE_PX, TABLET_PX, DESKTOP_PX = 390, 760, 1280


def _viewport(browser, width: int, height: int, *, mobile: bool) -> None:
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})


def _report(tmp_path, *extra):
    t = make_procedure(tmp_path / "in")
    out = tmp_path / "in" / "report.html"
    assert main(["report", str(t.sections), "--csv", str(t.csv), "--out", str(out),
                 *extra]) == 0
    return out, t


def _px(browser, element, prop: str) -> float:
    return float(browser.execute_script(
        "return parseFloat(getComputedStyle(arguments[0])[arguments[1]])", element, prop))


def _rect(browser, element) -> dict:
    return browser.execute_script("var r = arguments[0].getBoundingClientRect();"
                                  "return {left: r.left, right: r.right, top: r.top, "
                                  "bottom: r.bottom}", element)


def test_report_on_a_phone_is_readable_and_plays_in_view(tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    out, _ = _report(tmp_path)
    _viewport(browser, PHONE_PX, 844, mobile=True)
    browser.get(out.as_uri())
    inner = browser.execute_script("return window.innerWidth")
    assert inner == PHONE_PX
    assert browser.execute_script("return document.documentElement.scrollWidth") <= inner
    # the timeline: redrawn in HTML at a readable size (the picture's text would be ~3 px)
    assert not browser.find_element(By.ID, "timeline").is_displayed()
    bar = browser.find_element(By.ID, "bar")
    assert bar.is_displayed()
    ticks = bar.find_elements(By.CSS_SELECTOR, ".tick")
    assert [t.text for t in ticks][0] == "0:00" and len(ticks) >= 3
    for t in ticks:
        assert _px(browser, t, "fontSize") >= 12
        assert 0 <= _rect(browser, t)["left"] and _rect(browser, t)["right"] <= inner
    shown = [s for s in bar.find_elements(By.CSS_SELECTOR, ".seg") if s.text]
    assert shown and all(_px(browser, s, "fontSize") >= 12 for s in shown)
    for seg in shown:  # a label is shown whole or not at all ("Unusab" would mislead)
        assert browser.execute_script(
            "return arguments[0].scrollWidth <= arguments[0].clientWidth", seg), seg.text
    # the table: every figure of every section on screen, nothing to scroll sideways
    rows = browser.find_elements(By.CSS_SELECTOR, "#sections tbody tr")
    assert len(rows) == len(LAYOUT)
    for row in rows:
        for cell in row.find_elements(By.CSS_SELECTOR, "td.end, td.dur, td.good, td.conf"):
            assert cell.is_displayed(), cell.get_attribute("class")
            box = _rect(browser, cell)
            assert box["left"] >= 0 and box["right"] <= inner, (cell.text, box)
    browser.save_screenshot(str(tmp_path / "phone.png"))
    # a row far below the player: the click brings the player into view and plays
    wait = WebDriverWait(browser, WAIT_S)
    wait.until(lambda d: d.execute_script(
        "return document.getElementById('player').readyState >= 1"))
    browser.execute_script("arguments[0].scrollIntoView()", rows[-1])
    player = browser.find_element(By.ID, "player")
    assert _rect(browser, player)["bottom"] < 0  # scrolled out of view
    rows[-1].click()
    start = LAYOUT[-1][1] / FPS
    wait.until(lambda d: start - 0.05 <= d.execute_script(
        "return document.getElementById('player').currentTime") <= start + 1.0)
    wait.until(lambda d: _rect(d, player)["top"] >= -1
               and _rect(d, player)["bottom"] <= d.execute_script("return innerHeight") + 1)
    browser.save_screenshot(str(tmp_path / "phone-playing.png"))
    # the redrawn timeline seeks like the picture: a tap at 60 % of it plays from there
    from selenium.webdriver.common.action_chains import ActionChains

    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", bar)
    width = _rect(browser, bar)["right"] - _rect(browser, bar)["left"]
    ActionChains(browser).move_to_element_with_offset(bar, int(0.1 * width), 0).click().perform()
    at = 0.6 * (LAYOUT[-1][2] + 1) / FPS
    wait.until(lambda d: abs(d.execute_script(
        "return document.getElementById('player').currentTime") - at) < 0.3)


@pytest.mark.parametrize("width", [DESKTOP_PX, TABLET_PX])
def test_report_on_a_desktop_aligns_figures_and_shows_the_picture(tmp_path, browser, width):
    from selenium.webdriver.common.by import By

    out, _ = _report(tmp_path)
    _viewport(browser, width, 900, mobile=False)
    browser.get(out.as_uri())
    assert browser.find_element(By.ID, "timeline").is_displayed()
    assert not browser.find_element(By.ID, "bar").is_displayed()
    heads = browser.find_elements(By.CSS_SELECTOR, "#sections thead th")
    cells = browser.find_elements(By.CSS_SELECTOR, "#sections tbody tr:first-child td")
    for head, cell in zip(heads, cells, strict=True):
        # a header sits over its values: right-aligned over right-aligned figures
        assert (browser.execute_script("return getComputedStyle(arguments[0]).textAlign", head)
                == browser.execute_script("return getComputedStyle(arguments[0]).textAlign",
                                          cell)), head.text
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    box = _rect(browser, browser.find_element(By.CSS_SELECTOR, ".scroll"))
    for cell in browser.find_elements(By.CSS_SELECTOR, "#sections td.conf"):
        assert _rect(browser, cell)["right"] <= box["right"], width  # no column cut off
    browser.save_screenshot(str(tmp_path / f"desktop-{width}.png"))


def test_report_prints_every_column_on_the_page(tmp_path, browser):
    import base64
    import subprocess

    from selenium.webdriver.common.print_page_options import PrintOptions

    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("pdftotext is not installed (apt-get install poppler-utils)")
    out, t = _report(tmp_path)
    browser.get(out.as_uri())
    options = PrintOptions()
    options.page_width, options.page_height = 21.0, 29.7  # A4, cm
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(base64.b64decode(browser.print_page(options)))
    text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True, timeout=60).stdout
    for s in t.doc["sections"]:  # the last columns are printed, not cut at the page edge
        assert f"{s['confidence']:.2f}" in text
        assert clock(s["end_s"]) in text and clock(s["end_s"] - s["start_s"]) in text
    assert "Confidence" in text.replace("CONFIDENCE", "Confidence")
    # the labels' colours are their meaning: printed, not dropped as backgrounds
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    assert browser.execute_script("return getComputedStyle(document.querySelector("
                                  "'#sections .label')).printColorAdjust") == "exact"
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm:  # a picture of the first page, to look at
        subprocess.run([pdftoppm, "-png", "-r", "60", "-f", "1", "-l", "2", str(pdf),
                        str(tmp_path / "print")], check=True, timeout=60)


def test_report_moved_away_from_its_video_says_so(tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    out, _ = _report(tmp_path)
    moved = tmp_path / "sent" / "report.html"
    moved.parent.mkdir()
    out.rename(moved)
    browser.get(moved.as_uri())
    WebDriverWait(browser, WAIT_S).until(
        lambda d: d.find_element(By.ID, "novideo").is_displayed())
    assert not browser.find_element(By.CSS_SELECTOR, ".player").is_displayed()
    assert "relative to where the report was written" in browser.find_element(
        By.ID, "novideo").text
    browser.save_screenshot(str(tmp_path / "moved.png"))
