"""Drives the search page in headless Chromium (tests/page.rs runs this).

Arguments: the server's base URL and its token. PUSHDEX_SCREENSHOT=PATH also
saves a screenshot of the page with results and facets. Every wait is bounded;
any failure raises (exit status 1) with what the page showed.
"""

import os
import re
import sys
import tempfile

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

BASE, TOKEN = sys.argv[1], sys.argv[2]
WAIT = 20  # seconds, for every wait


def browser(profile):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1000,700",
        "--hide-scrollbars",
        "--user-data-dir=" + profile,
    ]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    # A 1000×700 viewport (the screenshot's size), whatever the window's frame.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1000, "height": 700, "deviceScaleFactor": 1, "mobile": False})
    # The token on every request: the page and its fetch calls.
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": "Bearer " + TOKEN}})
    return driver


def until(driver, what, condition):
    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.05,
                             ignored_exceptions=[StaleElementReferenceException]).until(lambda d: condition())
    except TimeoutException:
        raise AssertionError(f"waited {WAIT}s for {what}; the page at {driver.current_url} shows:\n"
                             + driver.find_element(By.TAG_NAME, "body").text) from None


def total(driver):
    """The total shown (None while there is none), read in one step."""
    found = driver.execute_script("const t = document.getElementById('total'); return t && t.textContent")
    return int(found) if found else None


def hits(driver):
    """The URIs of the hits shown, read in one step (the page may be re-rendering)."""
    return driver.execute_script("return [...document.querySelectorAll('#hits .hit .uri')].map((e) => e.textContent)")


def folders(driver):
    """The folder facet's root and its (folder, count) pairs, read in one step ((None, []) when not shown)."""
    root, values = driver.execute_script("""
        const box = document.getElementById('folders');
        if (!box) return [null, []];
        return [box.dataset.root, [...box.querySelectorAll('button')].map(
            (b) => [b.dataset.folder, parseInt(b.querySelector('.count').textContent, 10)])];
    """)
    return root, [tuple(v) for v in values]


def click_folder(driver, folder, query):
    """Clicks `folder` in the folder facet: the query becomes `query`, the total the folder's count, and every hit is in it."""
    button = driver.find_element(By.CSS_SELECTOR, f'#folders button[data-folder="{folder}"]')
    count = int(button.find_element(By.CLASS_NAME, "count").text)
    assert button.find_element(By.CLASS_NAME, "value").text == folder.rsplit("/", 2)[-2] + "/"
    before = total(driver)
    assert 0 < count <= before, (count, before)
    button.click()
    until(driver, "the hits in " + folder, lambda: total(driver) == count
          and driver.find_element(By.ID, "q").get_attribute("value") == query
          and all(uri.startswith(folder) for uri in hits(driver)))
    shown = hits(driver)
    assert len(shown) == min(count, 10) and all(uri.startswith(folder) for uri in shown), (folder, shown)


def step(name):
    print("page test:", name, flush=True)


def main():
    with tempfile.TemporaryDirectory(prefix="pushdex-chromium-") as profile:
        driver = browser(profile)
        try:
            run(driver)
        finally:
            driver.quit()


def run(driver):
    step("open the page")
    driver.get(BASE + "/")
    until(driver, "the page to be ready", lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    picker = driver.find_element(By.ID, "index")
    names = [o.get_attribute("value") for o in picker.find_elements(By.TAG_NAME, "option")]
    assert names == ["docs", "wiki"], names
    assert picker.get_attribute("value") == "docs"

    step("type a query: hits with highlights")
    box = driver.find_element(By.ID, "q")
    box.send_keys("report", Keys.ENTER)
    until(driver, "the hits of 'report'", lambda: total(driver) is not None and len(hits(driver)) == 10)
    everything = total(driver)
    assert everything > 20, everything
    assert "q=report" in driver.current_url, driver.current_url
    first_page = hits(driver)
    marks = driver.find_elements(By.CSS_SELECTOR, "#hits .hit .snippet b")
    assert len(marks) >= 10, len(marks)
    assert all(re.fullmatch(r"(?i)reports?", b.text) for b in marks), [b.text for b in marks]
    headings = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "#hits .hit h2")]
    assert headings[0] and all(headings), headings
    assert any(h.startswith("Report ") for h in headings), headings  # the title meta, not the URI
    summary = driver.find_element(By.ID, "summary").text
    assert f"{everything} results" in summary and "1–10" in summary, summary
    facet_names = [f.get_attribute("data-name") for f in driver.find_elements(By.CSS_SELECTOR, "#facets .facet[data-name]")]
    assert facet_names == ["author", "type", "lang", "year"], facet_names  # "kind" has no value: not shown
    root, tops = folders(driver)  # the folders under "": each hit is in one
    assert root == "" and sorted(f for f, _ in tops) == ["https:/", "share/"], (root, tops)
    assert sum(n for _, n in tops) == everything, (tops, everything)
    shot = os.environ.get("PUSHDEX_SCREENSHOT")
    if shot:
        driver.execute_script("document.activeElement.blur()")
        driver.save_screenshot(shot)
        step("screenshot saved to " + shot)

    step("click a facet value: the hits narrow to its count")
    button = driver.find_element(By.CSS_SELECTOR, '#facets .facet[data-name="author"] button')
    value, count = button.get_attribute("data-value"), int(button.find_element(By.CLASS_NAME, "count").text)
    assert 0 < count < everything, (count, everything)
    button.click()
    until(driver, "the hits by " + value, lambda: total(driver) == count)
    assert driver.find_element(By.ID, "q").get_attribute("value") == f'report @author:"{value}"'
    narrowed = hits(driver)
    assert len(narrowed) == min(count, 10) and narrowed != first_page, narrowed
    shown = driver.find_element(By.CSS_SELECTOR, '#facets .facet[data-name="author"] .count').text
    assert int(shown) == count, shown

    step("click a folder: the hits narrow to its count, all in it")
    driver.back()
    until(driver, "the first page again", lambda: total(driver) == everything and hits(driver) == first_page)
    click_folder(driver, "share/", 'report under:"share/"')
    step("click a folder inside it: the under: root is replaced")
    until(driver, "the folders under share/", lambda: folders(driver)[0] == "share/")
    click_folder(driver, "share/notes/", 'report under:"share/notes/"')
    assert folders(driver) == (None, []), folders(driver)  # no folder below: no list

    step("back: the first query again")
    driver.back()
    until(driver, "the first folder again",
          lambda: driver.find_element(By.ID, "q").get_attribute("value") == 'report under:"share/"')
    driver.back()
    until(driver, "the first page again", lambda: total(driver) == everything and hits(driver) == first_page)

    step("page forward: other hits, offset 10")
    driver.find_element(By.ID, "next").click()
    until(driver, "the second page", lambda: "offset=10" in driver.current_url and len(hits(driver)) == 10
          and hits(driver) != first_page)
    second_page = hits(driver)
    assert not set(second_page) & set(first_page), (first_page, second_page)
    assert "11–20" in driver.find_element(By.ID, "summary").text
    assert driver.find_element(By.ID, "page").text == f"page 2 of {(everything + 9) // 10}"
    step("reload keeps the state")
    driver.refresh()
    until(driver, "the second page after a reload", lambda: hits(driver) == second_page)
    driver.find_element(By.ID, "prev").click()
    until(driver, "the first page from Previous", lambda: hits(driver) == first_page)

    step("a document holding <script> shows it as text")
    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys("exploit", Keys.ENTER)
    until(driver, "the hit of 'exploit'", lambda: total(driver) == 1 and len(hits(driver)) == 1)
    snippet = driver.find_element(By.CSS_SELECTOR, "#hits .hit .snippet")
    assert "<script>window.pwned = 1</script>" in snippet.text, snippet.text
    assert '<img src=x onerror="window.pwned = 2">' in snippet.text, snippet.text
    assert [b.text for b in snippet.find_elements(By.TAG_NAME, "b")] == ["exploit"]
    heading = driver.find_element(By.CSS_SELECTOR, "#hits .hit h2").text
    assert heading == "<b>Bold</b> <script>window.pwned = 3</script> title", heading
    assert driver.find_elements(By.CSS_SELECTOR, "#hits script, #hits img, #hits h2 b") == []
    assert driver.execute_script("return window.pwned === undefined")

    step("?index= chooses the index; its snippets come from its 'content' part")
    driver.get(BASE + "/?index=wiki&q=kettle")
    until(driver, "the wiki's hits", lambda: total(driver) == 2)
    assert driver.find_element(By.ID, "index").get_attribute("value") == "wiki"
    marks = [b.text for b in driver.find_elements(By.CSS_SELECTOR, "#hits .snippet b")]
    assert marks and all(m.lower() == "kettle" for m in marks), marks
    assert driver.find_elements(By.CSS_SELECTOR, "#facets .facet[data-name]") == []
    assert folders(driver) == ("", [("wiki/", 2)]), folders(driver)
    step("done")


if __name__ == "__main__":
    main()
