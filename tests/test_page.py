"""The page at `/`, driven in a real headless Chromium (Debian's, through playwright) against a real
`serve` on a temp copy of the sample vault, with the loopback fake model behind `ask`.

On a machine without Chromium these skip with the reason; in CI (`CI` set) a missing browser fails,
because `.ci/run` installs it."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import httpx
import pytest

from conftest import indexed_sample
from fake_llm import FakeLLM, Reply
from helpers import start
from pai_kb.kb import KnowledgeBase
from pai_kb.server import create_app


def chromium() -> str | None:
    for candidate in (os.environ.get("PAI_KB_CHROMIUM"), "/usr/lib/chromium/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    executable = chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        executable = None
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium or playwright is missing in CI: .ci/run installs chromium with apt-get")
        pytest.skip("no Chromium here (apt-get install chromium, or set PAI_KB_CHROMIUM) or playwright missing")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, real_embedder):
    tmp = tmp_path_factory.mktemp("page")
    kb = indexed_sample(tmp, real_embedder)
    hostile = kb.config.vault / "Hostile.md"
    hostile.write_text('# <img src=x onerror="window.pwned=1"> zanzibar\n\nThe zanzibar note <script>window.pwned=2</script>\n')
    kb.index()
    llm = FakeLLM().start()
    app_kb = KnowledgeBase(kb.config.replace(llm_base_url=llm.url), embedder=real_embedder)
    url, server = start(create_app(app_kb))
    yield url, llm, kb
    server.should_exit = True
    llm.stop()


@pytest.fixture
def page(browser, served):
    url, _, _ = served
    # Playwright's waits evaluate strings, which the page's CSP forbids; the CSP itself is checked in a
    # context of its own (test_the_page_loads_nothing_from_elsewhere...).
    context = browser.new_context(viewport={"width": 1280, "height": 860}, bypass_csp=True)
    opened = context.new_page()
    requested: list[str] = []
    opened.on("request", lambda r: requested.append(r.url))
    opened.goto(url + "/")
    opened.wait_for_function("document.getElementById('status').textContent.includes('passages')")
    opened.requested = requested  # type: ignore[attr-defined]
    yield opened
    context.close()


def shots() -> Path:
    folder = Path(os.environ.get("PAI_KB_SCREENSHOTS", "") or Path(__file__).parent.parent / ".pytest_cache" / "screens")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_search_as_you_type_shows_the_right_note_with_its_links(page, served):
    page.locator("#q").press_sequentially("how much coffee for a V60", delay=15)
    first = page.locator("#results > li.result").first
    first.wait_for()
    page.wait_for_function("document.querySelector('#results li .title strong').textContent === 'Pour-over brewing'")
    where = first.locator(".where").text_content()
    assert "Coffee/Pour-over brewing.md" in where and "lines" in where
    href = first.locator("a.open").get_attribute("href")
    assert href.startswith("obsidian://open?vault=vault&file=Coffee%2FPour-over%20brewing")
    first.locator("button.related").click()
    first.locator(".related-list li").first.wait_for()
    assert first.locator(".related-list li").count() >= 1
    assert first.locator(".related-list li a").first.get_attribute("href").startswith("obsidian://open?vault=vault&file=")
    page.screenshot(path=str(shots() / "page-light.png"))


def test_filters_narrow_the_results(page):
    page.locator("#q").fill("spaced repetition review")
    page.locator("#results > li.result").first.wait_for()
    page.select_option("#type", "transcript")
    page.wait_for_function("[...document.querySelectorAll('#results .where')].length > 0 && "
                           "[...document.querySelectorAll('#results .where')].every(e => e.textContent.endsWith('transcript'))")
    first = page.locator("#results > li.result").first
    assert "at " in first.locator(".where").text_content()  # a timestamp, not lines
    assert first.locator("a", has_text="watch at this time").count() == 1


def test_ask_streams_an_answer_whose_citations_open_their_passage(page, served):
    _, llm, kb = served
    answer = "A pour-over takes 2:45 to 3:15 in all [1], with a bloom first."
    llm.replies.append(Reply(answer, pace=0.15))
    page.locator("#q").fill("pour-over timing")  # both halves of the page in the screenshot
    page.locator("#results > li.result").first.wait_for()
    page.locator("#question").fill("how long should a pour-over brew take?")
    page.locator("#ask-button").click()
    page.wait_for_function("document.querySelector('#answer p.streaming')?.textContent.length > 0")
    partial = page.locator("#answer p").first.text_content()
    assert partial and answer.startswith(partial) and partial != answer  # arrived in pieces
    page.locator("#answer a.cite").first.wait_for()
    assert page.locator("#answer p").first.text_content() == answer
    assert page.locator("#sources li").count() >= 1
    page.locator("#answer a.cite").first.click()
    page.locator("#passage pre").wait_for()
    cited = page.evaluate("state.sources[0]")
    lines = (kb.config.vault / cited["path"]).read_text().splitlines()[cited["line_start"] - 1:cited["line_end"]]
    shown = page.locator("#passage pre").text_content()
    assert [line for line in lines if line.strip()] and all(line in shown for line in lines if line.strip())
    assert page.locator("#passage h3").text_content().startswith(f"[1] {cited['path']}")
    page.screenshot(path=str(shots() / "page-ask.png"))


def test_keyboard_and_dark_mode(page):
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q" and page.locator("#q").input_value() == ""
    page.keyboard.type("sourdough starter")
    page.locator("#results > li.result").first.wait_for()
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.classList.contains('result')")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.locator("#theme").click()
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != background
    page.screenshot(path=str(shots() / "page-dark.png"))


def test_the_page_loads_nothing_from_elsewhere_and_shows_notes_as_text(browser, served):
    """Under its own Content-Security-Policy (no bypass here), so a violation would show in the console."""
    url, _, _ = served
    context = browser.new_context()
    page = context.new_page()
    requested: list[str] = []
    console: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.on("console", lambda m: console.append(m.text))
    page.goto(url + "/")
    page.locator("#status", has_text="passages").wait_for()
    page.locator("#q").fill("zanzibar")
    page.locator("#results .result", has_text="<img src=x").first.wait_for()
    page.locator("#results .text", has_text="<script>").first.wait_for()
    assert page.evaluate("() => window.pwned") is None
    assert all(r.startswith(url + "/") for r in requested), requested
    assert not [m for m in console if "Content Security Policy" in m], console
    context.close()
    headers = httpx.get(url + "/").headers
    assert "script-src 'self'" in headers["content-security-policy"] and headers["x-content-type-options"] == "nosniff"
    assert httpx.get(url + "/page/../server.py").status_code == 404


def test_the_page_says_so_when_the_server_is_gone(browser, tmp_path, real_embedder, served):
    _, _, kb = served
    url, server = start(create_app(KnowledgeBase(kb.config, embedder=real_embedder)))
    context = browser.new_context()
    page = context.new_page()
    page.goto(url + "/")
    page.locator("#status", has_text="passages").wait_for()
    server.should_exit = True
    port = int(url.rsplit(":", 1)[1])
    deadline = time.monotonic() + 30
    while _answers(port):  # readiness of the opposite kind: the port stops answering
        assert time.monotonic() < deadline
        time.sleep(0.05)
    page.locator("#q").fill("espresso")
    page.locator("#error").wait_for(state="visible")
    assert "Cannot reach the pai-kb server" in page.locator("#error").text_content()
    context.close()


def test_a_server_with_a_token_asks_for_it(browser, served, real_embedder):
    _, _, kb = served
    url, server = start(create_app(KnowledgeBase(kb.config, embedder=real_embedder), token="page-token"))
    context = browser.new_context()
    page = context.new_page()
    page.goto(url + "/")
    page.locator("#token-dialog").wait_for(state="visible")
    page.locator("#token").fill("page-token")
    page.locator("#token-form button").click()
    page.locator("#status", has_text="passages").wait_for()
    page.locator("#q").fill("espresso")
    page.locator("#results > li.result").first.wait_for()
    context.close()
    server.should_exit = True


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
