"""Messages at the edges: text beginning with '-', impossible dates, empty arguments, blank requests
refused by the library (so every interface refuses them with the same words)."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from conftest import indexed_sample
from pai_kb.cli import main
from pai_kb.errors import InvalidRequest
from pai_kb.models import Filters


@pytest.fixture
def sample(tmp_path, embedder):
    kb = indexed_sample(tmp_path, embedder)
    c = kb.config
    yield kb, ["--vault", str(c.vault), "--inbox", str(c.inbox), "--index", str(c.index_dir)]
    kb.close()


def run(args):
    return CliRunner().invoke(main, args)


def test_text_beginning_with_a_dash_is_explained(sample):
    _, base = sample
    out = run([*base, "search", "-foo", "--mode", "keyword"])
    assert out.exit_code == 2 and "put -- before it: pai-kb search -- -foo" in out.stderr
    assert run([*base, "search", "--mode", "keyword", "--", "-foo"]).exit_code == 0


@pytest.mark.parametrize("since, says", [("2024-02-30", "is not a date (no such day)"),
                                         ("2024-13-45", "is not a date (no such day)"),
                                         ("24-1-5", "is not a date in the form YYYY-MM-DD")])
def test_impossible_dates_are_called_not_dates(sample, since, says):
    _, base = sample
    out = run([*base, "search", "coffee", "--since", since])
    assert out.exit_code == 2 and f"'{since}' {says}" in out.stderr
    with pytest.raises(InvalidRequest, match=re.escape(f"since '{since}' {says}")):
        Filters.of(since=since)
    assert Filters.of(since="2024-02-29").since == "2024-02-29"


@pytest.mark.parametrize("args, says", [
    (["search", "   "], "the query is empty; say what to look for"),
    (["ask", ""], "the question is empty; ask something"),
    (["get", ""], "the note name is empty"),
    (["related", " "], "the note name is empty"),
])
def test_empty_arguments_get_a_message_about_emptiness(sample, args, says):
    _, base = sample
    out = run([*base, *args])
    assert out.exit_code == 2 and says in out.stderr and "path" not in out.stderr.split(says)[0]


def test_an_empty_folder_option_is_not_the_current_folder(sample):
    out = run(["--vault", "", "status"])
    assert out.exit_code == 2 and "'--vault': is empty" in out.stderr


def test_the_library_refuses_blank_requests(sample):
    kb, _ = sample
    with pytest.raises(InvalidRequest, match="the query is empty; say what to look for"):
        kb.search(" \t\n")
    with pytest.raises(InvalidRequest, match="the question is empty; ask something"):
        kb.ask("")


def test_http_refuses_a_blank_query_with_the_same_words(sample):
    import httpx

    from helpers import start
    from pai_kb.server import create_app

    kb, _ = sample
    url, server = start(create_app(kb))
    try:
        got = httpx.get(f"{url}/search", params={"q": "   "})
        assert got.status_code == 400 and got.json()["detail"] == "the query is empty; say what to look for"
        posted = httpx.post(f"{url}/ask", json={"question": " ", "no_llm": True})
        assert posted.status_code == 400 and posted.json()["detail"] == "the question is empty; ask something"
    finally:
        server.should_exit = True


@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["search", "coffee", "--mode", "keyword"],
                                  ["get", "Home"], ["related", "Home"], ["ask", "coffee?", "--no-llm"]])
def test_reading_a_fresh_vault_creates_nothing(tmp_path, args):
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "Home.md").write_text("# Home\n\ncoffee notes\n")
    index = tmp_path / "ix"
    out = run(["--vault", str(vault), "--index", str(index), *args])
    assert out.exit_code == 1 and "no index yet" in out.stderr and "run `pai-kb index`" in out.stderr
    assert not index.exists() and sorted(p.name for p in tmp_path.rglob("*")) == ["Home.md", "vault"]
