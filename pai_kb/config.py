"""The one frozen `Config`, built once from defaults < TOML file < `PAI_KB_*` env vars < CLI flags.

Everything else receives a Config; nothing reads the environment or the file system for settings on its own.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pai_kb.errors import ConfigError

CONFIG_NAME = "pai-kb.toml"
DEFAULT_MODEL = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class Config:
    vault: Path = Path("vault")
    inbox: Path = Path("ingest")
    index_dir: Path = Path("index")
    config_file: Path | None = None
    # A Chroma server to hold the vectors instead of the embedded store under index_dir.
    chroma_url: str | None = None
    exclude: tuple[str, ...] = ()
    model: str = DEFAULT_MODEL
    # Word-pieces of body text per chunk; the title/heading prefix is budgeted on top, and the whole
    # must stay under the model's own limit (256 for all-MiniLM-L6-v2) so nothing is truncated silently.
    chunk_tokens: int = 200
    chunk_overlap: int = 32
    embed_batch_size: int = 32
    # Notes past this size are skipped with a warning: they are almost always generated dumps or
    # attachments named .md, and embedding them would take minutes.
    max_file_bytes: int = 10 * 1024 * 1024
    # Any OpenAI-compatible endpoint; None means answers are extractive (no model is called).
    llm_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    # The *name* of the variable holding the key, never the key: config files get shared and logged.
    llm_api_key_env: str = "OPENAI_API_KEY"
    llm_timeout: float = 60.0
    llm_temperature: float = 0.1
    # Below this cosine similarity between the question and the best passage, `ask` abstains without
    # calling the model. Calibrated on 40 answerable and 20 unanswerable questions about the Obsidian
    # Help vault: answerable ones scored 0.384-0.807, unanswerable 0.126-0.298; 0.34 sits in the gap.
    answer_min_similarity: float = 0.34
    answer_context_tokens: int = 2000
    # The only vault folders pai-kb ever writes into (materialised inbox items, saved answers). Saved
    # answers are not indexed: retrieving yesterday's answers as sources would feed the model itself.
    clippings_folder: str = "Clippings"
    transcripts_folder: str = "Transcripts"
    answers_folder: str = "pai-kb/Answers"
    # `search` hands the query to a running `pai-kb serve` for the same index when there is one.
    use_server: bool = True

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)


# TOML key -> (Config field, converter). Sections are flattened with a dot.
_TOML_KEYS: dict[str, tuple[str, Any]] = {
    "vault": ("vault", Path),
    "inbox": ("inbox", Path),
    "index": ("index_dir", Path),
    "index.path": ("index_dir", Path),
    "index.url": ("chroma_url", str),
    "exclude": ("exclude", tuple),
    "embedding.model": ("model", str),
    "embedding.batch_size": ("embed_batch_size", int),
    "chunking.max_tokens": ("chunk_tokens", int),
    "chunking.overlap_tokens": ("chunk_overlap", int),
    "sources.max_file_bytes": ("max_file_bytes", int),
    "llm.base_url": ("llm_base_url", str),
    "llm.model": ("llm_model", str),
    "llm.api_key_env": ("llm_api_key_env", str),
    "llm.timeout": ("llm_timeout", float),
    "llm.temperature": ("llm_temperature", float),
    "answer.min_similarity": ("answer_min_similarity", float),
    "answer.context_tokens": ("answer_context_tokens", int),
    "obsidian.clippings_folder": ("clippings_folder", str),
    "obsidian.transcripts_folder": ("transcripts_folder", str),
    "obsidian.answers_folder": ("answers_folder", str),
    "server.use": ("use_server", bool),
}
_ENV_KEYS = {"PAI_KB_VAULT": "vault", "PAI_KB_INBOX": "inbox", "PAI_KB_INDEX": "index_dir"}
_ENV_SETTINGS = {"PAI_KB_CHROMA_URL": "chroma_url", "PAI_KB_LLM_BASE_URL": "llm_base_url", "PAI_KB_LLM_MODEL": "llm_model",
                 "PAI_KB_LLM_API_KEY_ENV": "llm_api_key_env"}
_PATH_FIELDS = ("vault", "inbox", "index_dir")


def load_config(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Merge the four layers. The TOML file is looked for where the person said (flag, then env) or
    else in the vault root, so the vault itself can carry its settings."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    env_values = {f: Path(env[k]) for k, f in _ENV_KEYS.items() if env.get(k)}
    explicit = flags.get("config_file") or env.get("PAI_KB_CONFIG")
    vault_guess = Path(flags.get("vault") or env_values.get("vault") or Config.vault)
    config_file = _find_config_file(explicit, _absolute(vault_guess, cwd))
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(_read_toml(config_file))
    values.update(env_values)
    values.update({f: env[k] for k, f in _ENV_SETTINGS.items() if env.get(k)})
    values.update(flags)
    values["config_file"] = config_file
    for name in _PATH_FIELDS:
        if name in values:
            from_toml = config_file is not None and name not in env_values and name not in flags
            base = config_file.parent if from_toml else cwd
            values[name] = _absolute(Path(values[name]), base)
        else:
            values[name] = _absolute(getattr(Config, name), cwd)
    return _validated(Config(**values))


def _absolute(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else (base / path)


def _find_config_file(explicit: str | os.PathLike | None, vault: Path) -> Path | None:
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist: fix --config / PAI_KB_CONFIG or create it")
        return path.resolve()
    candidate = vault / CONFIG_NAME
    return candidate.resolve() if candidate.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc}); fix the TOML or remove the file") from exc
    values: dict[str, Any] = {}
    for key, value in _flatten(raw).items():
        if key not in _TOML_KEYS:
            raise ConfigError(f"{path}: unknown setting '{key}'; known: {', '.join(sorted(_TOML_KEYS))}")
        name, convert = _TOML_KEYS[key]
        try:
            values[name] = convert(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: setting '{key}' has a bad value {value!r}") from exc
    return values


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _validated(config: Config) -> Config:
    if config.chunk_tokens < 32:
        raise ConfigError(f"chunking.max_tokens={config.chunk_tokens} is too small; use 32 or more")
    if not 0 <= config.chunk_overlap < config.chunk_tokens // 2:
        raise ConfigError("chunking.overlap_tokens must be between 0 and half of chunking.max_tokens")
    if config.llm_api_key_env.startswith(("sk-", "sk_")) or len(config.llm_api_key_env) > 64:
        raise ConfigError("llm.api_key_env must name an environment variable holding the key, not the key itself")
    for folder in (config.clippings_folder, config.transcripts_folder, config.answers_folder):
        if not folder or Path(folder).is_absolute() or ".." in Path(folder).parts:
            raise ConfigError(f"obsidian folder '{folder}' must be a relative path inside the vault")
    if config.embed_batch_size < 1:
        raise ConfigError("embedding.batch_size must be at least 1")
    return config
