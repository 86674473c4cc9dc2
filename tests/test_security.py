"""What an outside attack found, each reproduced against real servers and real files: DNS rebinding,
secrets sent where the user did not send them, one hostile file stopping a run, terminal escapes, a
server held up by one slow answer, unchecked citation forms, and write-back escaping its folders."""

import json
import os
import shutil
import statistics
import threading
import time

import httpx
import pytest
from click.testing import CliRunner

from conftest import PROJECT, indexed_sample, make_kb
from fake_llm import FakeLLM, Reply
from helpers import start
from pai_kb.answer import check_citations
from pai_kb.cli import main
from pai_kb.errors import LLMError
from pai_kb.kb import KnowledgeBase
from pai_kb.server import create_app
from pai_kb.writeback import safe_name

SECRET = "sk-test-never-send-me-0123456789"


@pytest.fixture(scope="module")
def sample(tmp_path_factory, real_embedder):
    return indexed_sample(tmp_path_factory.mktemp("security"), real_embedder)


@pytest.fixture(scope="module")
def api(sample):
    url, server = start(create_app(sample.__class__(sample.config.replace(allowed_origins=("app://obsidian.md",)),
                                                    embedder=sample.embedder)))
    yield url
    server.should_exit = True


# -- 1. DNS rebinding and cross-origin pages --------------------------------------------------------
@pytest.mark.parametrize("route", ["/notes/Homelab/Backups.md", "/search?q=restic", "/status"])
def test_a_rebound_name_is_refused(api, route):
    forged = httpx.get(f"{api}{route}", headers={"Host": "evil.com"})
    assert forged.status_code == 421 and "restic" not in forged.text
    port = api.rsplit(":", 1)[1]
    assert httpx.get(f"{api}{route}", headers={"Host": f"localhost:{port}"}).status_code == 200


def test_cross_origin_pages_are_refused_unless_allowed(api):
    evil = httpx.post(f"{api}/search", json={"query": "restic"}, headers={"Origin": "http://evil.com"})
    assert evil.status_code == 403 and "server.allowed_origins" in evil.json()["detail"]
    same = httpx.post(f"{api}/search", json={"query": "restic"}, headers={"Origin": api})
    assert same.status_code == 200
    plugin = httpx.post(f"{api}/search", json={"query": "restic"}, headers={"Origin": "app://obsidian.md"})
    assert plugin.status_code == 200 and plugin.headers["access-control-allow-origin"] == "app://obsidian.md"
    preflight = httpx.options(f"{api}/search", headers={"Origin": "app://obsidian.md",
                                                        "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200


# -- 2. Secrets go only where the user sent them -----------------------------------------------------
def test_a_key_in_the_environment_is_not_sent_to_an_endpoint_it_was_not_named_for(sample, monkeypatch):
    llm = FakeLLM().start()
    try:
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        KnowledgeBase(sample.config.replace(llm_base_url=llm.url), embedder=sample.embedder).ask(
            "how long should a pour-over brew take?")
        assert llm.requests and SECRET not in json.dumps(llm.requests[-1]["headers"])
        named = sample.config.replace(llm_base_url=llm.url, llm_api_key_env="OPENAI_API_KEY")
        KnowledgeBase(named, embedder=sample.embedder).ask("how long should a pour-over brew take?")
        assert llm.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET}"
    finally:
        llm.stop()


def test_vault_settings_cannot_pick_the_secret(tmp_path):
    (tmp_path / "pai-kb.toml").write_text('[llm]\nbase_url = "http://127.0.0.1:9/v1"\napi_key_env = "GITHUB_TOKEN"\n')
    result = CliRunner().invoke(main, ["--vault", str(tmp_path), "status"], env={"GITHUB_TOKEN": SECRET})
    assert result.exit_code == 2 and "may not be set in a vault's own pai-kb.toml" in result.stderr


def test_credentials_in_an_endpoint_url_never_show(sample):
    from helpers import free_port
    url = f"http://user:{SECRET}@127.0.0.1:{free_port()}/v1"
    with pytest.raises(LLMError) as caught:
        KnowledgeBase(sample.config.replace(llm_base_url=url), embedder=sample.embedder).ask(
            "how long should a pour-over brew take?")
    assert SECRET not in str(caught.value) and "http://***@127.0.0.1" in str(caught.value)


# -- 3. No single file stops a run -------------------------------------------------------------------
def hostile_corpus(vault, inbox) -> dict[str, str]:
    """Every case the attack used; returns file -> what its warning must say."""
    (vault / "bad-date.md").write_text("---\ncreated: 2024-02-30\n---\n# Bad date\n\nThe ocelot note.\n")
    (inbox / "deep.json").write_text("[" * 100_000)
    (vault / "loop-a.md").symlink_to(vault / "loop-b.md")
    (vault / "loop-b.md").symlink_to(vault / "loop-a.md")
    (vault / "noise.html").write_bytes(os.urandom(4096))
    (vault / "noise.md").write_bytes(b"\xff\xfe" + os.urandom(4096))
    name = os.fsencode(vault) + b"/caf\xe9-latin1.md"  # a Latin-1 name: not valid UTF-8
    with open(name, "wb") as handle:
        handle.write(b"# Latin one\n\nThe tapir note.\n")
    return {"vault/loop-a.md": "a symlink loop", "vault/loop-b.md": "a symlink loop",
            "inbox/deep.json": "nested too deeply", "vault/noise.html": "looks binary",
            "vault/noise.md": "looks binary"}


def test_hostile_files_are_skipped_with_reasons_and_the_run_completes(tmp_path, vault, embedder):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    expected = hostile_corpus(vault, inbox)
    kb = make_kb(tmp_path, vault, embedder, inbox=inbox)
    report = kb.index()
    errors = kb.status().errors
    for key, why in expected.items():
        assert why in errors[key], (key, errors.get(key))
    assert kb.search("ocelot", k=1, mode="keyword")[0].chunk.path == "bad-date.md"
    assert kb.search("tapir", k=1, mode="keyword")[0].chunk.path == "caf\\xe9-latin1.md"
    assert report.skipped == len(expected) and kb.index().skipped == 0  # skipped once, not retried forever
    print(f"\n[hostile corpus] {len(expected) + 4} hostile files; {report.added} files indexed, {report.skipped} skipped")


def test_the_watcher_outlives_hostile_files(tmp_path, vault, embedder):
    from helpers import running, wait_for
    from test_watch import found
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    kb = make_kb(tmp_path, vault, embedder, inbox=inbox)
    with running(kb):
        expected = hostile_corpus(vault, inbox)
        (vault / "after.md").write_text("# After\n\nThe pangolin note.\n")
        wait_for(lambda: found(kb, "pangolin") == {"after.md"} and set(expected) <= set(kb.manifest.file_errors()))


# -- 5. Output is inert --------------------------------------------------------------------------------
def test_escapes_from_notes_and_models_never_reach_the_terminal(tmp_path, real_embedder):
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "evil.md").write_text("---\ntitle: \"Evil \\e]0;pwned\\a title\"\nsource: \"https://x.org/\\e]8;;http://evil\\e\\\\\"\n"
                                   "---\n# Heading \x1b[31mred\n\nThe escape kangaroo text \x1b]8;;http://evil\x1b\\.\n")
    kb = make_kb(tmp_path, vault, real_embedder)
    kb.index()
    settings = tmp_path / "settings.toml"
    settings.write_text("[answer]\nmin_similarity = -1\n")  # always answer: this test is about the output
    args = ["--vault", str(vault), "--inbox", str(tmp_path / "inbox"), "--index", str(kb.config.index_dir),
            "--config", str(settings)]
    llm = FakeLLM(replies=[Reply("Kangaroo \x1b]0;owned\x07 [1].")]).start()
    try:
        found = CliRunner().invoke(main, [*args, "search", "kangaroo", "--mode", "keyword", "--local"])
        assert found.exit_code == 0 and "kangaroo" in found.stdout and "\x1b" not in found.stdout
        streamed = CliRunner().invoke(main, [*args, "ask", "kangaroo escape text?"],
                                      env={"PAI_KB_LLM_BASE_URL": llm.url})
        assert "Kangaroo" in streamed.stdout and "\x1b" not in streamed.stdout and "\x07" not in streamed.stdout
    finally:
        llm.stop()


# -- 6. The server holds up ----------------------------------------------------------------------------
def test_chunked_bodies_are_capped_too(api):
    def chunks():
        for _ in range(100):
            yield b" " * 1024
    response = httpx.post(f"{api}/search", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_filters_and_text_are_bounded_and_validated(api):
    many = httpx.post(f"{api}/search", json={"query": "coffee", "tags": [f"t{i}" for i in range(1001)]})
    assert many.status_code == 400 and "at most" in many.json()["detail"]
    lone = httpx.post(f"{api}/search", content=b'{"query": "coffee \\ud800"}', headers={"content-type": "application/json"})
    assert lone.status_code == 422 and "unicode" in lone.json()["detail"][0]["msg"]  # 4xx, never a 500
    assert lone.json()["detail"][0]["loc"] == ["body", "query"]


def test_a_slow_answer_never_blocks_searches(sample):
    llm = FakeLLM(default=Reply("Slow answer [1].", delay=4.0)).start()
    url, server = start(create_app(KnowledgeBase(sample.config.replace(llm_base_url=llm.url), embedder=sample.embedder)))
    try:
        asks = [threading.Thread(target=httpx.post, args=(f"{url}/ask",),
                                 kwargs={"json": {"question": "how long should a pour-over brew take?"}, "timeout": 60})
                for _ in range(2)]
        for thread in asks:
            thread.start()
        deadline = time.monotonic() + 30
        while len(llm.requests) < 2:  # readiness: both answers are waiting on the slow model
            assert time.monotonic() < deadline
            time.sleep(0.02)
        took = []
        for _ in range(20):
            started = time.perf_counter()
            assert httpx.get(f"{url}/search", params={"q": "restic password", "k": 3}, timeout=30).status_code == 200
            took.append(time.perf_counter() - started)
        p95 = statistics.quantiles(took, n=20)[-1]
        print(f"\n[server] /search while two /ask wait on a 4 s model: 20 requests, 0 errors, "
              f"p50 {statistics.median(took) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
        assert p95 < 2.0 and all(thread.is_alive() for thread in asks)  # searches finished while asks still wait
        for thread in asks:
            thread.join(timeout=30)
    finally:
        server.should_exit = True
        llm.stop()


# -- 7. Citations ----------------------------------------------------------------------------------------
def test_every_bracketed_citation_form_is_checked():
    assert check_citations("A [9 ]. B [ 9]. C [^9]. D [^2].", 3) == ("A. B. C. D [2].", [2], [9])
    assert check_citations("E [1-3]. F [2–5].", 3) == ("E [1][2][3]. F [2][3].", [1, 2, 3], [4, 5])
    assert check_citations("G [1, 9].", 3) == ("G [1].", [1], [9])


# -- 8. Write-back ---------------------------------------------------------------------------------------
def test_long_cjk_names_fit_the_file_system(tmp_path):
    name = safe_name("知識" * 60)
    assert len(name.encode()) <= 200 and name.startswith("知識")
    (tmp_path / f"{name} (99).md").write_text("fits")  # the longest name pai-kb can make is accepted


def test_write_back_into_a_symlinked_folder_is_refused(tmp_path, embedder, caplog):
    vault, inbox, outside = tmp_path / "vault", tmp_path / "inbox", tmp_path / "outside"
    shutil.copytree(PROJECT / "vault", vault)
    shutil.copytree(PROJECT / "ingest", inbox)
    outside.mkdir()
    (vault / "Transcripts").symlink_to(outside, target_is_directory=True)
    kb = make_kb(tmp_path, vault, embedder, inbox=inbox)
    kb.index()
    written = kb.materialize()  # each refused item is a warning; the others are still written
    assert list(outside.iterdir()) == []
    refused = [r.getMessage() for r in caplog.records if "leads outside the vault" in r.getMessage()]
    assert refused and all("Transcripts" not in w.path for w in written)
    assert any(w.path.startswith("Clippings/") for w in written)


def test_cjk_titles_and_deleted_notes(tmp_path, embedder):
    vault, inbox = tmp_path / "vault", tmp_path / "inbox"
    shutil.copytree(PROJECT / "vault", vault)
    inbox.mkdir()
    (inbox / "long.md").write_text(f"---\ntitle: {'長い題名' * 30}\nsource: https://example.org/long\n---\n\nBody text.\n")
    (inbox / "short.md").write_text("---\ntitle: Short clip\nsource: https://example.org/short\n---\n\nOther body.\n")
    kb = make_kb(tmp_path, vault, embedder, inbox=inbox)
    kb.index()
    written = {w.source: w for w in kb.materialize()}
    assert {w.action for w in written.values()} == {"created"} and len(written) == 2
    short = vault / written["inbox/short.md"].path
    short.unlink()
    again = {w.source: w.action for w in kb.materialize()}
    assert again["inbox/short.md"] == "deleted-by-you" and not short.exists()
    assert {w.source: w.action for w in kb.materialize(restore=True)}["inbox/short.md"] == "created" and short.exists()


def test_a_long_cjk_question_is_saved(tmp_path, vault, embedder):
    from pai_kb.answer import Answer
    kb = make_kb(tmp_path, vault, embedder)
    question = "私のノートには何が書いてありますか" * 12  # 204 characters, 612 bytes of UTF-8
    saved = kb.save_answer(Answer(question, "An answer [1].", [], cited=[], extractive=True))
    assert saved.is_file() and saved.parent == vault / "pai-kb" / "Answers"
    assert len(saved.name.encode()) <= 255 and question in saved.read_text()
