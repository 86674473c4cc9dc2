"""The CLI through click's runner and as a real subprocess, with the real embedding model."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import PROJECT
from pai_kb import __version__
from pai_kb.cli import main


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """The sample vault and inbox indexed once with the real model, through the CLI."""
    tmp = tmp_path_factory.mktemp("cli")
    args = ["--vault", str(PROJECT / "vault"), "--inbox", str(PROJECT / "ingest"), "--index", str(tmp / "index")]
    result = CliRunner().invoke(main, args + ["index"])
    assert result.exit_code == 0, result.output
    return args, result


def run(args, *more):
    return CliRunner().invoke(main, [*args, *more])


def test_index_summary(indexed):
    _, result = indexed
    assert "added" in result.stdout and "chunks embedded" in result.stdout
    assert "Broken frontmatter.md: frontmatter is not valid YAML" in result.stderr


def test_search_json_shape(indexed):
    args, _ = indexed
    result = run(args, "search", "how long should a pour-over take", "-k", "3", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["query"] == "how long should a pour-over take" and len(data["results"]) == 3
    first = data["results"][0]
    expected = {"rank", "score", "path", "title", "heading", "line_start", "line_end", "source_type", "tags",
                "text", "url", "start_s", "end_s"}
    assert expected <= set(first)
    assert first["path"] == "Coffee/Pour-over brewing.md" and first["rank"] == 1
    assert first["url"] is None and first["start_s"] is None and "coffee" in first["tags"]
    lines = (PROJECT / "vault" / first["path"]).read_text().split("\n")[first["line_start"] - 1:first["line_end"]]
    assert first["text"].split()[0] in "\n".join(lines)


def test_search_finds_inbox_clip_with_url(indexed):
    args, _ = indexed
    data = json.loads(run(args, "search", "ef_search recall latency trade-off", "--json", "-k", "1").stdout)
    assert data["results"][0]["url"] == "https://example.org/articles/hnsw-explained"
    assert data["results"][0]["path"] == "Vector search with HNSW.md"


def test_search_text_output_cites_lines(indexed):
    args, _ = indexed
    result = run(args, "search", "quixotic", "-k", "1", "--mode", "keyword")
    assert result.exit_code == 0 and result.stdout.startswith("1. Broken frontmatter.md:")


def test_status_json(indexed):
    args, _ = indexed
    data = json.loads(run(args, "status", "--json").stdout)
    assert data["files"] >= 17 and data["chunks"] > data["files"] and data["model"] == "all-MiniLM-L6-v2+int8"  # the default precision (see config)
    assert data["out_of_date"] == {"new": [], "changed": [], "deleted": []}


def test_errors_are_one_line_exit_1(tmp_path):
    result = CliRunner().invoke(main, ["--vault", str(tmp_path / "nope"), "--index", str(tmp_path / "ix"), "index"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: vault {tmp_path / 'nope'} does not exist or is not a folder: pass --vault, set PAI_KB_VAULT, "
        "or set vault in pai-kb.toml"]


def test_usage_errors_exit_2(indexed):
    args, _ = indexed
    assert run(args, "search", "   ").exit_code == 2
    assert run(args, "search", "x", "--mode", "psychic").exit_code == 2


def test_every_command_has_help():
    for name, command in main.commands.items():
        assert command.help, f"{name} has no help"
        assert CliRunner().invoke(main, [name, "--help"]).exit_code == 0


def test_python_dash_m_entry_point(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pai_kb", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith(f"version {__version__}"), out.stderr
    fresh = subprocess.run([sys.executable, "-m", "pai_kb", "--vault", str(PROJECT / "vault"), "--index",
                            str(tmp_path / "ix"), "status", "--json"], capture_output=True, text=True, timeout=60)
    assert fresh.returncode == 1 and "no index yet" in fresh.stderr and not (tmp_path / "ix").exists()


def test_related_notes(indexed):
    args, _ = indexed
    data = json.loads(run(args, "related", "Coffee/Pour-over brewing.md", "--json", "-k", "3").stdout)
    assert data["results"][0]["path"] == "Coffee/Espresso dialing in.md" and data["results"][0]["linked"] is True
    fresh = json.loads(run(args, "related", "Pour-over brewing", "--new-only", "--json").stdout)
    assert "Coffee/Espresso dialing in.md" not in [r["path"] for r in fresh["results"]]
    assert fresh["results"] and all(r["path"] != "Coffee/Pour-over brewing.md" for r in fresh["results"])


def test_related_unknown_note(indexed):
    args, _ = indexed
    result = run(args, "related", "No Such Note")
    assert result.exit_code == 1 and "note 'No Such Note' is not in the index" in result.stderr


def test_search_filters_echoed_in_json(indexed):
    args, _ = indexed
    result = run(args, "search", "grind", "--tag", "espresso", "--since", "2020-01-01", "--json")
    data = json.loads(result.stdout)
    assert data["filters"] == {"types": [], "tags": ["espresso"], "path": None,
                               "since": "2020-01-01"}
    assert {r["path"] for r in data["results"]} == {"Coffee/Espresso dialing in.md"}
    assert run(args, "search", "grind", "--since", "yesterday").exit_code == 2


def test_transcript_citation_has_time_and_timed_url(indexed):
    args, _ = indexed
    data = json.loads(run(args, "search", "review just before you forget", "--type", "transcript", "--json", "-k", "1").stdout)
    hit = data["results"][0]
    assert hit["path"] == "Spaced repetition talk.vtt" and hit["source_type"] == "transcript"
    # The passage starts at 0:00; the words were said at 0:12, and the citation and the link go there.
    assert hit["start_s"] == 0.0 and hit["at_s"] == 12.0
    assert hit["url"] == "https://www.youtube.com/watch?v=pai-kb-sample&t=12s"
    text = run(args, "search", "review just before you forget", "--type", "transcript", "-k", "1").stdout
    assert text.startswith("1. Spaced repetition talk.vtt:")
    assert "@ 00:00:12 https://www.youtube.com/watch?v=pai-kb-sample&t=12s" in text


def test_html_clip_from_inbox(indexed):
    args, _ = indexed
    data = json.loads(run(args, "search", "re-season a rusty pan", "--type", "webclip", "--json", "-k", "1").stdout)
    hit = data["results"][0]
    assert hit["path"] == "Cast iron care.html" and hit["url"] == "https://example.org/kitchen/cast-iron-care"
    assert hit["heading"] == "How to care for a cast iron pan > Re-seasoning"


def test_obsidian_uri_in_json(indexed):
    args, _ = indexed
    data = json.loads(run(args, "search", "how long should a pour-over take", "--json", "-k", "1").stdout)
    assert data["results"][0]["obsidian_uri"] == "obsidian://open?vault=vault&file=Coffee%2FPour-over%20brewing.md"
    clip = json.loads(run(args, "search", "re-season a rusty pan", "--type", "webclip", "--json", "-k", "1").stdout)
    assert clip["results"][0]["obsidian_uri"] is None  # inbox files are not in the vault


def test_terminal_hyperlinks():
    from pai_kb.render import hyperlink
    assert hyperlink("a.md:3", "obsidian://x") == "\033]8;;obsidian://x\033\\a.md:3\033]8;;\033\\"
    assert hyperlink("a.md:3", None) == "a.md:3"
