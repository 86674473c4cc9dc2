from pathlib import Path

import pytest

from conftest import PROJECT
from pai_kb.config import load_config
from pai_kb.errors import ConfigError


def test_default_index_follows_the_vault_not_the_working_directory(tmp_path):
    vault = tmp_path / "My Notes"
    vault.mkdir()
    env = {"PAI_KB_DATA_DIR": str(tmp_path / "data")}
    here = load_config({"vault": vault}, env=env, cwd=tmp_path)
    elsewhere = load_config({"vault": vault}, env=env, cwd=Path("/"))
    assert here.index_dir == elsewhere.index_dir
    assert here.index_dir.parent == tmp_path / "data" / "indexes" and here.index_dir.name.startswith("My-Notes-")
    other = tmp_path / "other" / "My Notes"
    other.mkdir(parents=True)
    assert load_config({"vault": other}, env=env).index_dir != here.index_dir  # same name, another vault
    assert here.inbox is None and here.config_file is None


def test_bundled_vault_takes_the_project_inbox_but_not_an_index(tmp_path):
    config = load_config({"vault": PROJECT / "vault"}, env={"PAI_KB_DATA_DIR": str(tmp_path)}, cwd=tmp_path)
    assert config.inbox == PROJECT / "ingest" and config.index_dir.parent == tmp_path / "indexes"


def test_precedence_toml_env_flags(tmp_path):
    vault = tmp_path / "v"
    vault.mkdir()
    (vault / "pai-kb.toml").write_text('inbox = "in-toml"\n[chunking]\nmax_tokens = 120\n')
    config = load_config({"vault": vault}, env={}, cwd=tmp_path)
    assert config.inbox == vault / "in-toml"  # relative to the TOML file
    assert config.chunk_tokens == 120
    own = tmp_path / "own.toml"
    own.write_text('index = "ix-toml"\n')
    assert load_config({"vault": vault}, env={"PAI_KB_CONFIG": str(own)}, cwd=tmp_path).index_dir == tmp_path / "ix-toml"
    config = load_config({"vault": vault}, env={"PAI_KB_INDEX": "/env/ix"}, cwd=tmp_path)
    assert config.index_dir == Path("/env/ix") and config.inbox == vault / "in-toml"
    config = load_config({"vault": vault, "index_dir": Path("flag-ix")}, env={"PAI_KB_INDEX": "/env/ix"}, cwd=tmp_path)
    assert config.index_dir == tmp_path / "flag-ix"


def test_vault_from_env_finds_its_toml(tmp_path):
    (tmp_path / "pai-kb.toml").write_text('exclude = ["Templates/*"]\n')
    config = load_config({}, env={"PAI_KB_VAULT": str(tmp_path)}, cwd=Path("/"))
    assert config.exclude == ("Templates/*",)


def test_explicit_config_file(tmp_path):
    path = tmp_path / "other.toml"
    path.write_text("[embedding]\nbatch_size = 8\n")
    assert load_config({}, env={"PAI_KB_CONFIG": str(path)}, cwd=tmp_path).embed_batch_size == 8
    with pytest.raises(ConfigError, match="does not exist"):
        load_config({"config_file": tmp_path / "missing.toml"}, env={}, cwd=tmp_path)


def test_unknown_key_and_bad_toml_are_clear(tmp_path):
    (tmp_path / "pai-kb.toml").write_text("colour = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        load_config({"vault": tmp_path}, env={}, cwd=tmp_path)
    (tmp_path / "pai-kb.toml").write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config({"vault": tmp_path}, env={}, cwd=tmp_path)


def test_config_is_frozen(tmp_path):
    config = load_config({}, env={}, cwd=tmp_path)
    with pytest.raises(AttributeError):
        config.vault = tmp_path  # type: ignore[misc]
