#!/usr/bin/env python3
"""Drives serve's web page (GET /) in headless Chromium as a person would, and prints what the
page shows as one JSON line.

    /usr/bin/python3 tools/browser/serve_page.py --url http://127.0.0.1:PORT/ --text "WINNER! ..."
        -> {"kind": "classifier", "label": "spam", "shown": "..."}
    /usr/bin/python3 tools/browser/serve_page.py --url ... --text "Repeat the number 4."
        -> {"kind": "instruct", "answer": "..."}

Needs Debian's chromium, chromium-driver and python3-selenium (scripts/install-deps.sh installs
them). Run by Tests/ModelServerTests/BrowserTests.swift; exits 3 when selenium or the browser is
missing, so the test can skip with that message.
"""
import argparse
import json
import shutil
import sys

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as error:
    print(f"selenium is not installed ({error}): apt-get install python3-selenium", file=sys.stderr)
    sys.exit(3)


def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        print("chromium or chromedriver not found: apt-get install chromium chromium-driver", file=sys.stderr)
        sys.exit(3)
    options = Options()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=900,900"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--text", required=True, help="what to type into the page's message box")
    parser.add_argument("--screenshot", help="also save a PNG of the page after the answer")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    driver = browser()
    try:
        driver.get(args.url)
        wait = WebDriverWait(driver, args.timeout)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        kind = "classifier" if "Classifier" in driver.find_element(By.ID, "kind").text else "instruct"
        driver.find_element(By.ID, "message").send_keys(args.text)
        driver.find_element(By.ID, "send").click()
        result = {"kind": kind}
        if kind == "classifier":
            wait.until(lambda d: d.find_element(By.ID, "label").text.strip() != "" or d.find_element(By.ID, "error").text)
            result["label"] = driver.find_element(By.ID, "label").text.strip()
            result["shown"] = driver.find_element(By.ID, "result-card").text
        else:
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#last-answer[data-done='true']") or d.find_element(By.ID, "error").text)
            answers = driver.find_elements(By.ID, "last-answer")
            result["answer"] = answers[0].text if answers else ""
            result["user"] = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".msg.user")]
        result["error"] = driver.find_element(By.ID, "error").text
        if args.screenshot:
            driver.save_screenshot(args.screenshot)
        print(json.dumps(result))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
