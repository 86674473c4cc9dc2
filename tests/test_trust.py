"""A person's mistakes never cost their index, and every interface says what went wrong (issue: trust).

Settings by type, the mass-removal guard, the index belonging to its vault, `get`, and the small things
around `ask`. Real temp vaults, a real Chroma store, the CLI through click's runner."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import PROJECT, make_kb
from pai_kb.cli import main
from pai_kb.config import load_config
from pai_kb.errors import BadSetting, ConfigError, MassRemoval, NoteNotFound, VaultMismatch


def write_toml(vault: Path, text: str) -> Path:
    path = vault / "pai-kb.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("toml, key, fix", [
    ('exclude = "Templates/*"', "exclude", 'must be a list of globs, e.g. ["Templates/*"]'),
    ('[server]\nuse = "false"', "server.use", "must be true or false"),
    ("[answer]\nmin_similarity = nan", "answer.min_similarity", "must be a number from -1 to 1"),
    ("[sources]\nmax_file_bytes = -5", "sources.max_file_bytes", "must be from 1024"),
    ("[chunking]\nmax_tokens = 200.9", "chunking.max_tokens", "must be a whole number from 32"),
    ("[answer]\ncontext_tokens = 10", "answer.context_tokens", "must be from 64 to 1000000"),
    ('[embedding]\nmodel = ["x"]', "embedding.model", "must be a non-empty string"),
])
def test_settings_are_checked_by_type(tmp_path, toml, key, fix):
    path = write_toml(tmp_path, toml)
    with pytest.raises(BadSetting) as caught:
        load_config({"vault": tmp_path}, env={}, cwd=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}: setting '{key}' = ") and fix in message and "\n" not in message


def test_bad_env_var_and_file_as_folder_are_named(tmp_path):
    with pytest.raises(BadSetting, match=r"environment variable PAI_KB_LLM_BASE_URL = 'localhost:11434': must be an "
                                         r"http\(s\) URL"):
        load_config({"vault": tmp_path}, env={"PAI_KB_LLM_BASE_URL": "localhost:11434"}, cwd=tmp_path)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(BadSetting, match="index_dir .*afile is a file, not a folder"):
        load_config({"vault": tmp_path, "index_dir": tmp_path / "afile"}, env={}, cwd=tmp_path)


def test_cli_bad_setting_is_one_line_exit_2(tmp_path, vault):
    write_toml(vault, 'exclude = "Templates/*"\n')
    result = CliRunner().invoke(main, ["--vault", str(vault), "--index", str(tmp_path / "ix"), "index"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "setting 'exclude' = 'Templates/*': must be a list of globs" in lines[0]
    assert not (tmp_path / "ix").exists()  # refused before anything was touched


def test_vault_settings_may_not_choose_the_secret_or_where_it_goes(tmp_path):
    write_toml(tmp_path, '[llm]\napi_key_env = "GITHUB_TOKEN"\n')
    with pytest.raises(ConfigError, match="may not be set in a vault's own pai-kb.toml"):
        load_config({"vault": tmp_path}, env={}, cwd=tmp_path)
    outside = tmp_path.parent / f"{tmp_path.name}-own.toml"
    outside.write_text('[llm]\nbase_url = "http://127.0.0.1:1/v1"\napi_key_env = "MY_KEY"\n')
    config = load_config({"vault": tmp_path, "config_file": outside}, env={}, cwd=tmp_path)
    assert (config.llm_base_url, config.llm_api_key_env) == ("http://127.0.0.1:1/v1", "MY_KEY")


def test_mass_removal_is_refused_unless_allowed(tmp_path, embedder):
    vault = tmp_path / "vault"
    (vault / "notes").mkdir(parents=True)
    for i in range(30):
        (vault / "notes" / f"n{i}.md").write_text(f"# Note {i}\n\nword{i} appears here.\n")
    (vault / "keep.md").write_text("# Keep\n\nstays.\n")
    kb = make_kb(tmp_path, vault, embedder)
    kb.index()
    for i in range(25):
        (vault / "notes" / f"n{i}.md").unlink()
    with pytest.raises(MassRemoval, match=r"25 of 31 indexed files are gone from disk.*--allow-removal"):
        kb.index()
    assert kb.manifest.counts()[0] == 31  # nothing was removed
    assert kb.index(allow_removal=True).removed == 25 and kb.manifest.counts()[0] == 6


def test_vanished_inbox_removes_nothing(tmp_path, vault, embedder):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "clip.md").write_text("---\nsource: https://example.org/a\n---\n# Clip\n\nAbout quokkas.\n")
    kb = make_kb(tmp_path, vault, embedder, inbox=inbox)
    kb.index()
    (inbox / "clip.md").rename(tmp_path / "clip.md")  # the inbox is now empty: an unmounted drive looks so
    with pytest.raises(MassRemoval, match=f"the inbox folder {inbox} is empty, which would remove 1 indexed files"):
        kb.index()
    inbox.rmdir()
    with pytest.raises(MassRemoval, match="is missing"):
        kb.index()
    assert "inbox/clip.md" in kb.manifest.file_states()


def test_index_belongs_to_its_vault(tmp_path, vault, embedder):
    kb = make_kb(tmp_path, vault, embedder)
    kb.index()
    other = tmp_path / "other"
    other.mkdir()
    stranger = make_kb(tmp_path, other, embedder)
    for call in (lambda: stranger.search("coffee"), stranger.status, stranger.index, lambda: stranger.note("Home")):
        with pytest.raises(VaultMismatch, match=f"was built for .*vault {vault}.*, not .*vault {other}"):
            call()
    assert kb.manifest.counts()[0] > 10  # the refusal touched nothing


def test_cli_wrong_or_missing_vault_fails_on_every_command(tmp_path):
    base = ["--vault", str(PROJECT / "vault"), "--index", str(tmp_path / "ix"), "--inbox", str(PROJECT / "ingest")]
    assert CliRunner().invoke(main, [*base, "index"]).exit_code == 0
    other = tmp_path / "notes"
    other.mkdir()
    for command in (["search", "coffee", "--local"], ["status"], ["get", "Home"]):
        result = CliRunner().invoke(main, ["--vault", str(other), "--index", str(tmp_path / "ix"), *command])
        assert result.exit_code == 1 and f"was built for inbox {PROJECT / 'ingest'}, vault {PROJECT / 'vault'}" in result.stderr
    missing = CliRunner().invoke(main, ["--vault", str(tmp_path / "nope"), "search", "coffee"])
    assert missing.exit_code == 1 and f"vault {tmp_path / 'nope'} does not exist" in missing.stderr


def test_never_indexed_vault_says_so_and_creates_nothing(tmp_path):
    vault = tmp_path / "fresh"
    vault.mkdir()
    data = tmp_path / "data"
    result = CliRunner().invoke(main, ["search", "coffee", "--vault", str(vault), "--local"],
                                env={"PAI_KB_DATA_DIR": str(data)})
    assert result.exit_code == 1 and "no index yet for vault" in result.stderr and "run `pai-kb index`" in result.stderr
    assert not data.exists()


def test_options_after_the_command(tmp_path):
    base = ["--vault", str(PROJECT / "vault"), "--index", str(tmp_path / "ix"), "--inbox", str(PROJECT / "ingest")]
    assert CliRunner().invoke(main, ["index", *base]).exit_code == 0
    result = CliRunner().invoke(main, ["search", *base, "grams of coffee for a V60", "--json", "-k", "1", "--local"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"][0]["path"] == "Coffee/Pour-over brewing.md"


def test_get_by_path_title_and_lines(tmp_path):
    base = ["--vault", str(PROJECT / "vault"), "--index", str(tmp_path / "ix"), "--inbox", str(PROJECT / "ingest")]
    assert CliRunner().invoke(main, [*base, "index"]).exit_code == 0
    source = (PROJECT / "vault" / "Coffee" / "Pour-over brewing.md").read_text()
    whole = CliRunner().invoke(main, [*base, "get", "Coffee/Pour-over brewing.md"])
    assert whole.exit_code == 0 and whole.stdout == source + "\n"
    by_title = json.loads(CliRunner().invoke(main, [*base, "get", "Pour-over brewing:2-3", "--json"]).stdout)
    assert by_title["path"] == "Coffee/Pour-over brewing.md" and (by_title["line_start"], by_title["line_end"]) == (2, 3)
    assert by_title["text"] == "\n".join(source.split("\n")[1:3])
    clip = CliRunner().invoke(main, [*base, "get", "Cast iron care.html", "--root", "inbox"])
    assert clip.exit_code == 0 and "flaxseed" in clip.stdout
    typo = CliRunner().invoke(main, [*base, "get", "Pour-over brewin"])
    assert typo.exit_code == 1 and "did you mean 'Coffee/Pour-over brewing.md'?" in typo.stderr
    escape = CliRunner().invoke(main, [*base, "get", "../README.md", "--root", "vault"])
    assert escape.exit_code == 2 and "without '..'" in escape.stderr


def test_unknown_note_suggests_close_names(tmp_path, vault, embedder):
    kb = make_kb(tmp_path, vault, embedder)
    kb.index()
    with pytest.raises(NoteNotFound) as caught:
        kb.related("Espreso dialing")
    assert caught.value.suggestions[0] == "Coffee/Espresso dialing in.md"


def test_progress_without_a_terminal_is_one_line_per_interval(monkeypatch):
    from pai_kb import cli

    clock = [0.0]
    monkeypatch.setattr(cli.time, "monotonic", lambda: clock[0])
    lines = []
    monkeypatch.setattr(cli.click, "echo", lambda text, err=False: lines.append(text))
    with cli._progress("Indexing") as progress:
        for done in range(1, 101):
            clock[0] += 1.0  # one file a second: 100 s in all
            progress(done, 100)
    assert lines == ["Indexing: 30 of 100 files", "Indexing: 60 of 100 files", "Indexing: 90 of 100 files"]


def test_an_index_remembers_its_inbox(tmp_path):
    """The README's own-vault commands give --inbox once, to `index`; later commands leave it out."""
    vault = tmp_path / "Notes"
    shutil.copytree(PROJECT / "vault", vault)
    (vault / "pai-kb.toml").unlink()  # a vault of one's own: no settings file
    env = {"PAI_KB_DATA_DIR": str(tmp_path / "data")}
    assert CliRunner().invoke(main, ["--vault", str(vault), "--inbox", str(PROJECT / "ingest"), "index"],
                              env=env).exit_code == 0
    found = CliRunner().invoke(main, ["--vault", str(vault), "search", "re-season a rusty pan", "--type", "webclip",
                                      "--json", "-k", "1", "--local"], env=env)
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout)["results"][0]["url"] == "https://example.org/kitchen/cast-iron-care"
    other = tmp_path / "Other inbox"
    other.mkdir()
    moved = CliRunner().invoke(main, ["--vault", str(vault), "--inbox", str(other), "status"], env=env)
    assert moved.exit_code == 1 and "was built for" in moved.stderr  # a different inbox given is still refused
