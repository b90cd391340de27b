"""End to end in a real browser: `streamlit run` on a free loopback port, headless Debian Chromium
driven by Playwright. Screenshots go to test-artifacts/screenshots/ (`make screenshots` copies them
into docs/ for the README)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlparse
from pathlib import Path

import pytest

from policyqa._config import PROJECT_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.browser]
CHROMIUM = "/usr/bin/chromium"
SHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
WAIT_MS = 180_000
JUDGE = re.compile(r"^Judge(?! all)")  # the button's name carries its shortcut hint ("Judge Ctrl+Enter")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def streamlit_app(home: Path, name: str, **settings: str) -> Iterator[str]:
    """`streamlit run` of the app on a free loopback port with these POLICYQA_* settings; yields its URL."""
    port = _free_port()
    env = {**os.environ, "POLICYQA_HOME": str(home), "HF_HUB_OFFLINE": "1",
           "POLICYQA_DATABASE_URL": f"sqlite:///{home / f'{name}-store.db'}",
           **{f"POLICYQA_{key.upper()}": value for key, value in settings.items()}}
    log_path = home / f"{name}-streamlit.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app" / "streamlit_app.py"),
             "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            process.terminate()
            pytest.fail("streamlit did not start: " + log_path.read_text()[-2000:])
        try:
            yield url
        finally:
            process.terminate()
            process.wait(timeout=20)


@pytest.fixture(scope="module")
def server(real_home):
    with streamlit_app(real_home, "browser") as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    if not Path(CHROMIUM).exists():
        reason = "Debian's chromium is not installed (make test installs it: scripts/ensure-browser)"
        if os.environ.get("POLICYQA_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"])
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        yield context.new_page()
        browser.close()


def test_ask_judge_and_open_a_clause_in_the_browser(server, page):
    page.goto(server)
    chat = page.get_by_placeholder("e.g. Can a seller put a QR code")
    chat.wait_for(timeout=WAIT_MS)
    chat.fill("Can a seller put a QR code to her group in her profile photo?")
    chat.press("Enter")
    page.get_by_text("weixin-standards/II.12.7").first.wait_for(timeout=WAIT_MS)
    assert page.get_by_text("Prohibited · confidence").first.is_visible()
    page.screenshot(path=str(SHOTS / "ask.png"), full_page=True)

    page.get_by_text("Adjudicate", exact=True).first.click()
    box = page.get_by_label("Paste the suspect message")
    box.wait_for(timeout=WAIT_MS)
    box.fill("Hi all, the lift is serviced Tuesday. Also I can get you fapiao invoices for any amount, 3% fee.")
    page.get_by_role("button", name=JUDGE).click()
    page.get_by_text("Penalties the rules set").wait_for(timeout=WAIT_MS)
    assert page.get_by_text("Violation · confidence").first.is_visible()
    assert page.get_by_text("weixin-standards/V.1").first.is_visible()  # a Weixin group message: Weixin's penalties
    page.screenshot(path=str(SHOTS / "adjudicate.png"), full_page=True)

    # Chinese: the same ruling, the English clause cited, the Chinese span shown as typed
    box.fill("今天天气不错。出售假身份证，加我微信")
    page.get_by_role("button", name=JUDGE).click()
    page.get_by_text("weixin-standards/II.9.2").first.wait_for(timeout=WAIT_MS)
    assert page.get_by_text("出售假身份证，加我微信").first.is_visible()
    page.screenshot(path=str(SHOTS / "adjudicate-zh.png"), full_page=True)

    link = page.get_by_role("link", name="open in Policies").first
    href = link.get_attribute("href")
    assert href and "clause=" in href
    page.goto(href if href.startswith("http") else f"{server}/{href.lstrip('/')}")
    clause_id = parse_qs(urlparse(href).query)["clause"][0]
    page.get_by_role("heading", name=clause_id).wait_for(timeout=WAIT_MS)
    page.get_by_role("textbox", name="Reviewer").wait_for(timeout=WAIT_MS)  # the sidebar has drawn: the screenshot is whole
    page.screenshot(path=str(SHOTS / "policies.png"), full_page=True)
    assert (SHOTS / "ask.png").stat().st_size > 10_000


def judge_with_keys(page, url: str, message: str, *, until: str) -> None:
    """Open Adjudicate, paste `message`, press Ctrl+Enter, and wait until `until` shows.

    A key press that lands while the page is still connecting to the app is lost (a fresh clone's
    run timed out once waiting for a ruling that was never asked for), so an unanswered press is
    repeated, within the same overall wait."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(f"{url}/?page=Adjudicate")
    box = page.get_by_label("Paste the suspect message")
    box.wait_for(timeout=WAIT_MS)
    attempts = 3
    for attempt in range(attempts):
        if attempt == 0 or not page.locator('[data-testid="stStatusWidget"]').is_visible():  # not while it runs
            box.fill(message)
            box.press("Control+Enter")
        try:
            page.get_by_text(until).first.wait_for(timeout=WAIT_MS // attempts)
            return
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise


POKER = "who wants to join poker night Friday? no money, just snacks and bragging rights, loser picks the next movie"


def test_a_needs_review_ruling_is_resolved_in_the_queue_then_scored_as_feedback(server, page, real_home, tmp_path):
    """Judge (Ctrl+Enter) a message that needs review, resolve it from the queue with the keyboard,
    reload and see it resolved; then export the feedback from the CLI and score it with eval."""
    judge_with_keys(page, server, POKER, until="Needs review · confidence")

    page.goto(f"{server}/?page=Review")
    page.get_by_label("Message contains").fill("poker night")
    page.get_by_label("Message contains").press("Enter")
    page.get_by_text("1 of 1 waiting").wait_for(timeout=WAIT_MS)
    page.get_by_text("loser picks the next movie").first.wait_for(timeout=WAIT_MS)
    page.get_by_role("button", name=re.compile("^No violation")).wait_for(timeout=WAIT_MS)
    page.get_by_role("textbox", name="Reviewer").wait_for(timeout=WAIT_MS)
    page.screenshot(path=str(SHOTS / "review.png"), full_page=True)
    page.get_by_role("heading", name="Review queue").click()  # focus off the text box: keys go to the page
    page.keyboard.press("n")  # No violation
    page.get_by_text("Nothing waits for review").wait_for(timeout=WAIT_MS)

    page.reload()
    page.get_by_label("Message contains").fill("poker night")
    page.get_by_label("Message contains").press("Enter")
    page.get_by_text("Nothing waits for review").wait_for(timeout=WAIT_MS)

    env = {**os.environ, "POLICYQA_HOME": str(real_home), "HF_HUB_OFFLINE": "1",
           "POLICYQA_DATABASE_URL": f"sqlite:///{real_home / 'browser-store.db'}"}
    cli = [sys.executable, "-m", "policyqa.cli"]
    reviewed = tmp_path / "reviewed.jsonl"
    exported = subprocess.run([*cli, "feedback", "export", "--out", str(reviewed)], env=env, capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr
    items = [json.loads(line) for line in reviewed.read_text().splitlines()]
    assert [(i["text"], i["expected_verdict"]) for i in items] == [(POKER, "no_violation")]
    scored = subprocess.run([*cli, "eval", "--dataset", str(reviewed), "--no-llama-baseline", "--out", str(tmp_path / "r")],
                            env=env, capture_output=True, text=True)
    assert scored.returncode == 0, scored.stderr
    assert json.loads((tmp_path / "r" / "report.json").read_text())["items"] == 1


HOSTILE = ("**bold** [click](http://phish.test/login) ![beacon](http://beacon.test/m.png) <img src=http://beacon.test/h.png> "
           "www.phish.test mail me@phish.test <b>tag</b> selling fake ID cards, dm me")


def _external_requests(page, run) -> list[str]:
    """The URLs the page requested off the app's own host while `run` ran."""
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    run()
    return [url for url in seen if not url.startswith(("http://127.0.0.1", "data:", "blob:"))]


def _live_links_and_images(page) -> tuple[list[str], list[str]]:
    """Links and images that point at the hostile message's hosts. (The app's own links to a cited
    clause may quote policy words such as "phishing websites": those are not the attacker's.)"""
    links = [a.get_attribute("href") or "" for a in page.query_selector_all("a")]
    images = [img.get_attribute("src") or "" for img in page.query_selector_all("img")]
    hostile = ("phish.test", "beacon.test")
    return ([h for h in links if any(host in h for host in hostile)], [s for s in images if any(host in s for host in hostile)])


def test_markup_links_and_images_in_a_message_or_the_address_bar_render_as_text(server, page):
    def judge_hostile() -> None:
        judge_with_keys(page, server, HOSTILE, until="Offending part of the message:")
        page.wait_for_timeout(1000)

    assert _external_requests(page, judge_hostile) == []
    assert _live_links_and_images(page) == ([], [])
    assert page.get_by_text("<img src=http://beacon.test/h.png>").first.is_visible()  # shown as typed
    page.screenshot(path=str(SHOTS / "hostile-message.png"), full_page=True)

    def open_hostile_link() -> None:
        page.goto(f"{server}/?page=Policies&clause=%5Bclick%5D(http://phish.test)%20![b](http://beacon.test/c.png)")
        page.get_by_text("No clause with id").first.wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(1000)

    assert _external_requests(page, open_hostile_link) == []
    assert _live_links_and_images(page) == ([], [])


def test_an_llm_reply_with_markup_links_and_images_renders_as_text(real_home, page):
    """The LLM engine against a hostile OpenAI-compatible server on 127.0.0.1: its summary and
    reason carry markdown, links, an image beacon and HTML, and the page shows them as text."""
    from tests.test_llm import HostileServer

    hostile = HostileServer()

    def reply(prompt: str) -> dict:
        lines = prompt.splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith("[") and "weixin-standards/II.9" in line)
        clause_id, text = lines[at][1:].split("]")[0], lines[at + 1]
        bait = "**Click** [here](http://phish.test/x) ![b](http://beacon.test/llm.png) <img src=http://beacon.test/i.png> www.phish.test"
        return {"verdict": "violation", "summary": f"Forged IDs. {bait}",
                "violations": [{"clause_id": clause_id, "quote": " ".join(text.split()[:8]),
                                "message_span": "selling fake ID cards", "reason": f"Sells IDs. {bait}"}]}

    hostile.script = reply
    try:
        with streamlit_app(real_home, "browser-llm", engine="llm", llm_provider="openai", llm_model="scripted",
                           llm_base_url=f"http://127.0.0.1:{hostile.httpd.server_address[1]}/v1") as url:
            def judge_with_llm() -> None:
                judge_with_keys(page, url, "selling fake ID cards and passports, any name, dm me",
                                until="Offending part of the message:")
                page.wait_for_timeout(1000)

            assert _external_requests(page, judge_with_llm) == []
            assert hostile.prompts, "the app did not call the LLM"
            assert _live_links_and_images(page) == ([], [])
            assert page.get_by_text("<img src=http://beacon.test/i.png>").first.is_visible()
            page.screenshot(path=str(SHOTS / "hostile-llm.png"), full_page=True)
    finally:
        hostile.close()
