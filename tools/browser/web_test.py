"""The web page of `gongji serve` in headless Chromium, driven by selenium: what a clerk and an
auditor do, checked against what the command line says of the same ledger.

tools/browser-test builds the ledger, starts the server and runs this with:
  GONGJI_WEB       the server's address (http://127.0.0.1:PORT)
  GONGJI_CLERK     a clerk's token;  GONGJI_AUDITOR  an auditor's token
  GONGJI_EXPECTED  a JSON file of the figures the command line gave (see tools/browser-test)
  GONGJI_SHOTS     the directory the screenshots are written to
Exits non-zero at the first check that fails, naming it; every page's screenshot is written as
it is checked (a failure's page too, as failed-NAME.png).
"""

import json
import os
import re
import sys
import tempfile
import traceback

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE = os.environ["GONGJI_WEB"].rstrip("/")
CLERK = os.environ["GONGJI_CLERK"]
AUDITOR = os.environ["GONGJI_AUDITOR"]
SHOTS = os.environ["GONGJI_SHOTS"]
with open(os.environ["GONGJI_EXPECTED"], encoding="utf-8") as f:
    EXPECTED = json.load(f)


def yuan(amount):
    """An amount as the page shows it in Chinese: grouped, with 元."""
    whole, fraction = amount.split(".")
    sign = "-" if whole.startswith("-") else ""
    digits = whole.lstrip("-")
    groups = []
    while len(digits) > 3:
        groups.insert(0, digits[-3:])
        digits = digits[:-3]
    groups.insert(0, digits)
    return f"{sign}{','.join(groups)}.{fraction} 元"


class Check:
    def __init__(self, driver):
        self.driver = driver
        self.wait = WebDriverWait(driver, 15)
        self.step = "start"

    def at(self, step):
        self.step = step
        print(f"web_test: {step}", flush=True)

    def shot(self, name):
        words = set(re.findall(r"[A-Za-z]+", self.driver.find_element(By.TAG_NAME, "body").text))
        leaked = words & {"null", "undefined", "NaN", "object"}
        assert not leaked, f"the page shows {leaked}"
        path = os.path.join(SHOTS, f"{name}.png")
        # The whole page: the window is as tall as the document (bounded).
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(1280, max(800, min(int(height) + 40, 4000)))
        self.driver.save_screenshot(path)
        self.driver.set_window_size(1280, 900)
        print(f"web_test: screenshot {path}", flush=True)

    def find(self, css):
        return self.wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))

    def text_is(self, css, expected):
        try:
            self.wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), expected))
        except TimeoutException:
            found = [e.text for e in self.driver.find_elements(By.CSS_SELECTOR, css)]
            raise AssertionError(f"{css}: expected {expected!r}, found {found!r}") from None
        got = self.driver.find_element(By.CSS_SELECTOR, css).text
        assert got == expected, f"{css}: expected {expected!r}, found {got!r}"

    def go(self, hash_path):
        self.driver.get(f"{BASE}/{hash_path}")

    def login(self, token, name):
        self.go("#/login")
        field = self.find("#token")
        field.clear()
        field.send_keys(token)
        self.driver.find_element(By.ID, "login").click()
        self.find("#member-id")
        self.text_is("#who", f"{name} · {'clerk' if token == CLERK else 'auditor'}")

    def logout(self):
        self.driver.find_element(By.ID, "logout").click()
        self.find("#token")


def clerk(c):
    d = c.driver
    member = EXPECTED["member"]

    c.at("a wrong token is refused on the login page")
    c.go("#/login")
    c.find("#token").send_keys("not-a-token")
    d.find_element(By.ID, "login").click()
    c.find('.error[data-status="401"]')
    c.shot("login-refused")

    c.at("a clerk logs in with a token")
    c.login(CLERK, "clerk1")
    assert not d.find_elements(By.ID, "nav-funds"), "a clerk's page offers the funds page"
    assert not d.find_elements(By.ID, "nav-audit"), "a clerk's page offers the audit page"

    c.at("finds a member and reads the balance")
    c.find("#member-id").send_keys(member)
    d.find_element(By.ID, "find").click()
    c.text_is("#balance", yuan(EXPECTED["balance"]))

    c.at("reads the timeline: every record, the last balance after equal to the balance")
    rows = d.find_elements(By.CSS_SELECTOR, "#timeline tbody tr")
    assert len(rows) == EXPECTED["entries"], f"{len(rows)} timeline rows, {EXPECTED['entries']} records"
    last = rows[-1].find_elements(By.TAG_NAME, "td")[-1].text
    assert last == yuan(EXPECTED["balance"]), f"last balance after {last!r}"
    # The changes shown, summed, are the account's balance (which the projections keep apart
    # from the timeline's fold), and each balance after is the one before plus the change.
    def fen(text):
        text = text.replace(",", "").replace(" 元", "").strip()
        if not text:
            return 0
        whole, fraction = text.lstrip("-").split(".")
        return (-1 if text.startswith("-") else 1) * (int(whole) * 100 + int(fraction))
    before = 0
    for row in rows:
        cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        change, after = fen(cells[5]), fen(cells[6])
        assert before + change == after, f"{cells}: {before} + {change} is not {after}"
        before = after
    assert before == fen(yuan(EXPECTED["balance"])), f"the changes sum to {before}"
    steps = d.find_elements(By.CSS_SELECTOR, "#balance-chart path.line")
    assert steps and steps[0].get_attribute("d").count("H") >= 2, "the balance chart has no line"
    c.shot("member")

    c.at("filters the timeline by year and kind")
    Select(d.find_element(By.ID, "filter-year")).select_by_value(EXPECTED["filter_year"])
    dates = [r.find_elements(By.TAG_NAME, "td")[1].text for r in d.find_elements(By.CSS_SELECTOR, "#timeline tbody tr")]
    assert dates and all(x.startswith(EXPECTED["filter_year"]) for x in dates), dates
    Select(d.find_element(By.ID, "filter-kind")).select_by_value("claim_settled")
    kinds = {r.get_attribute("data-kind") for r in d.find_elements(By.CSS_SELECTOR, "#timeline tbody tr")}
    assert kinds == {"claim_settled"}, kinds

    c.at("opens a claim's explanation")
    d.find_element(By.CSS_SELECTOR, f'#timeline a.claim-link[href="#/claim/{EXPECTED["claim"]}"]').click()
    c.text_is("#explain-policy", EXPECTED["claim_policy"])
    steps = d.find_elements(By.CSS_SELECTOR, "#explain-steps li")
    assert len(steps) == EXPECTED["claim_steps"], f"{len(steps)} steps, {EXPECTED['claim_steps']} expected"
    c.shot("explain")

    c.at("reads the member's year: deductible and annual limit as progress bars")
    c.go(f"#/member/{member}/year/{EXPECTED['filter_year']}")
    for bar, used, whole in [("deductible-bar", "year_deductible_used", "year_deductible"),
                             ("limit-bar", "year_ordinary_paid", "year_ordinary_limit")]:
        outer = c.find(f"#{bar} .bar").size["width"]
        inner = c.find(f"#{bar} .bar > div").size["width"]
        share = min(1.0, float(EXPECTED[used]) / float(EXPECTED[whole]))
        assert abs(inner / outer - share) < 0.01, f"{bar}: drawn {inner}/{outer}, {share:.3f} expected"
    c.text_is("#pooled-paid", yuan(EXPECTED["year_pooled_paid"]))
    c.shot("year")

    c.at("moves the as-of date and sees the older balance")
    c.go(f"#/member/{member}")
    c.text_is("#balance", yuan(EXPECTED["balance"]))
    d.execute_script("document.getElementById('as-of').value = arguments[0]", EXPECTED["as_of"])
    d.find_element(By.ID, "apply-as-of").click()
    c.text_is("#balance", yuan(EXPECTED["balance_as_of"]))
    assert f"as_of={EXPECTED['as_of']}" in d.current_url, d.current_url
    c.shot("member-as-of")

    c.at("and the recorded-before time: nothing was recorded before the ledger began")
    c.go(f"#/member/{member}?recorded_before=2000-01-01")
    c.find('.error[data-status="404"]')

    c.at("inheritance and transfers")
    c.go("#/member/M004/inheritance")
    c.text_is("#inherited-balance", yuan(EXPECTED["inherited_balance"]))
    c.shot("inheritance")
    c.go("#/member/M005/transfers")
    c.find("#transfers")
    rows = d.find_elements(By.CSS_SELECTOR, "#transfers > tbody > tr")
    assert len(rows) == EXPECTED["transfers"], f"{len(rows)} transfers, {EXPECTED['transfers']} expected"
    c.shot("transfers")

    c.at("a clerk is refused the fund and audit pages by the API")
    c.go("#/funds/500000")
    c.find('.error[data-status="403"]')
    c.shot("clerk-refused-funds")
    c.go("#/audit")
    c.find('.error[data-status="403"]')

    c.at("the page in English")
    c.go(f"#/member/{member}")
    c.find("#balance")
    d.find_element(By.ID, "lang").click()
    c.text_is("#nav-home", "Home")
    c.find("#balance")
    assert d.find_element(By.ID, "balance").text.startswith("¥"), d.find_element(By.ID, "balance").text
    c.shot("member-en")
    d.find_element(By.ID, "lang").click()
    c.text_is("#nav-home", "首页")
    c.logout()


def auditor(c):
    d = c.driver
    c.at("an auditor logs in and sees the funds page")
    c.login(AUDITOR, "aud1")
    d.find_element(By.ID, "nav-funds").click()
    c.find("#fund-region").send_keys("500000")
    d.find_element(By.ID, "show-funds").click()
    c.find("#funds-chart")
    c.text_is("#fund-pooled .value.big", yuan(EXPECTED["pooled_balance"]))
    bars = d.find_elements(By.CSS_SELECTOR, "#funds-chart rect")
    assert len(bars) == 2 * EXPECTED["fund_months"], f"{len(bars)} bars for {EXPECTED['fund_months']} months"
    c.shot("funds")

    c.at("the funds as of a past day")
    c.go(f"#/funds/500000?as_of={EXPECTED['as_of']}")
    c.text_is("#fund-pooled .value.big", yuan(EXPECTED["pooled_balance_as_of"]))
    months = d.find_elements(By.CSS_SELECTOR, "#fund-months tbody tr")
    assert len(months) == EXPECTED["fund_months_as_of"], f"{len(months)} months as of {EXPECTED['as_of']}"
    last = months[-1].find_elements(By.TAG_NAME, "td")[3].text
    assert last == yuan(EXPECTED["pooled_balance_as_of"]), f"the last month's balance {last}"

    c.at("the audit page: the access log names the clerk's reads; the chain verifies")
    c.go("#/audit")
    c.find("#access-log")
    tokens = {r.find_elements(By.TAG_NAME, "td")[1].text for r in d.find_elements(By.CSS_SELECTOR, "#access-log tbody tr")}
    assert "clerk1" in tokens, tokens
    d.find_element(By.ID, "verify").click()
    c.text_is("#verify-result .figure:first-child .value", str(EXPECTED["records"]))
    c.shot("audit")

    c.at("no request left this origin")
    urls = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [u for u in urls if not u.startswith(BASE)]
    assert not outside, outside


def main():
    os.makedirs(SHOTS, exist_ok=True)
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="gongji-chromium-")
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,900",
                 "--lang=zh-CN"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    c = Check(driver)
    try:
        clerk(c)
        auditor(c)
    except Exception:
        traceback.print_exc()
        try:
            driver.save_screenshot(os.path.join(SHOTS, "failed.png"))
        finally:
            print(f"web_test: FAILED at: {c.step}", file=sys.stderr)
        return 1
    finally:
        driver.quit()
    print("web_test: every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
