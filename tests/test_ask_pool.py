"""`/ask` has its own bounded pool and queue (server.AskPool): with every answer slot and queue place
taken by a model that does not answer, /search, /health and /status still answer at once, and the
overflow, streamed or not, gets 503 with Retry-After. Real uvicorn, real fake-model HTTP server."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import HashEmbedder, indexed_sample
from fake_llm import FakeLLM, Reply
from helpers import start, wait_for
from pai_kb.kb import KnowledgeBase
from pai_kb.server import create_app

QUESTION = "how long should a pour-over brew take?"
ANSWER = "Brew for about three minutes [1]."
WORKERS, QUEUE = 2, 3


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return indexed_sample(tmp_path_factory.mktemp("pool"), HashEmbedder())


@pytest.fixture
def held(sample):
    """(server url, the fake model, the gate that lets the model answer): the model holds every reply
    until the test opens the gate."""
    gate = threading.Event()
    llm = FakeLLM(default=Reply(ANSWER, hold=gate)).start()
    # min_similarity -1: the hash embedder's similarities are not the real model's; never abstain here.
    config = sample.config.replace(llm_base_url=llm.url, ask_workers=WORKERS, ask_queue=QUEUE,
                                   answer_min_similarity=-1.0)
    url, server = start(create_app(KnowledgeBase(config, embedder=sample.embedder)))
    try:
        yield url, llm, gate
    finally:
        gate.set()
        server.should_exit = True
        llm.stop()


def streamed(url: str) -> tuple[int, list[tuple[str, object]]]:
    """(status, [(event, data)]) of one streamed /ask."""
    events: list = []
    with httpx.stream("POST", f"{url}/ask", json={"question": QUESTION, "stream": True}, timeout=60) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, [("detail", response.json()), ("retry-after", response.headers.get("retry-after"))]
        for line in response.iter_lines():
            if line.startswith("event: "):
                events.append(line[7:])
            elif line.startswith("data: "):
                events[-1] = (events[-1], json.loads(line[6:]))
    return 200, events


def asked(url: str) -> httpx.Response:
    return httpx.post(f"{url}/ask", json={"question": QUESTION}, timeout=60)


def test_search_answers_while_every_answer_slot_waits_and_the_overflow_gets_503(held):
    url, llm, gate = held
    with ThreadPoolExecutor(16) as clients:
        # Two streamed answers take both workers: a stream counts like any other answer.
        streams = [clients.submit(streamed, url) for _ in range(WORKERS)]
        wait_for(lambda: len(llm.requests) == WORKERS)
        # Five more: the queue takes three, two are refused at once, while the model still holds.
        plain = [clients.submit(asked, url) for _ in range(QUEUE + 2)]
        wait_for(lambda: sum(f.done() for f in plain) == 2)
        refused = [f.result() for f in plain if f.done()]
        assert [r.status_code for r in refused] == [503, 503]
        assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
        assert "retry" in refused[0].json()["detail"]
        # A streamed ask beyond the queue is refused too, before any stream starts.
        status, overflow = streamed(url)
        assert status == 503 and int(overflow[1][1]) >= 1
        # Everything else answers at once meanwhile (generous bounds for a loaded 2-core machine).
        for path, params in (("/search", {"q": "pour-over brew time"}), ("/health", {}), ("/status", {})):
            started = time.monotonic()
            response = httpx.get(f"{url}{path}", params=params, timeout=10)
            assert response.status_code == 200 and time.monotonic() - started < 2.0, path
        hits = httpx.get(f"{url}/search", params={"q": "pour-over brew time", "k": 3}).json()["results"]
        assert any("Pour-over" in h["path"] for h in hits)
        assert len(llm.requests) == WORKERS  # the queued answers are still waiting for a worker
        gate.set()
        answered = [f.result() for f in plain if f.result().status_code != 503]
        assert len(answered) == QUEUE and all(r.status_code == 200 and r.json()["answer"] == ANSWER for r in answered)
        for future in streams:
            status, events = future.result()
            tokens = "".join(data for kind, data in events if kind == "token")
            assert status == 200 and tokens == ANSWER and events[-1][0] == "answer"
    # Every slot is free again.
    assert asked(url).json()["answer"] == ANSWER


def test_model_errors_come_back_through_the_pool(sample):
    llm = FakeLLM(default=Reply(status=401)).start()
    config = sample.config.replace(llm_base_url=llm.url, answer_min_similarity=-1.0)
    url, server = start(create_app(KnowledgeBase(config, embedder=sample.embedder)))
    try:
        response = asked(url)
        assert response.status_code == 502 and "refused the API key (401)" in response.json()["detail"]
        status, events = streamed(url)
        assert status == 200 and events == [("error", response.json()["detail"])]
    finally:
        server.should_exit = True
        llm.stop()
