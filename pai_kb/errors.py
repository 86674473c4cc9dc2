"""The one exception tree of pai-kb.

Library code raises these and never an interface's own exception; the CLI, the HTTP API and the MCP
server each map them to their own form by *type*, in one place. So every message must say what went
wrong *and* what the person can do about it, and must never carry a secret.

    PaiKbError
    ├── ConfigError          a setting, config file or path given by the person is unusable
    │   ├── BadSetting       a setting's value has the wrong type or range (a usage error: exit 2)
    │   └── VaultMismatch    the index was built for other roots than the ones given
    │   └── VectorServerUnreachable  the Chroma server of `index.url` does not answer (down, restarting)
    ├── IndexLockedError     another process writes the same index
    ├── IndexWriteError      the index folder cannot be written (disk full, read-only, no permission)
    ├── MassRemoval          a sync would drop most of the index (a vanished folder, not a choice)
    ├── InvalidRequest       a query or request argument is malformed (bad mode, empty query, ...)
    ├── NoteNotFound         a note named by path or title is not there (or may not be shown)
    ├── SourceError          one file could not be read or parsed; the run goes on without it
    │   ├── FileTooLarge     ... because it is over `sources.max_file_bytes`
    │   └── LoaderTimeout    ... because loading it took longer than the per-file budget
    └── LLMError             the language model endpoint could not produce an answer
"""

__all__ = ["BadSetting", "ConfigError", "FileTooLarge", "IndexLockedError", "IndexWriteError", "InvalidRequest",
           "LLMError", "LoaderTimeout", "MassRemoval", "NoteNotFound", "PaiKbError", "SourceError", "VaultMismatch", "VectorServerUnreachable"]


class PaiKbError(Exception):
    """Base of every error pai-kb raises on purpose."""


class ConfigError(PaiKbError):
    """A setting, config file or path given by the person is unusable."""


class BadSetting(ConfigError):
    """A value in the TOML file, an env var or a flag has the wrong type or is out of range."""


class VaultMismatch(ConfigError):
    """The index belongs to other roots: answering from it would silently answer about another vault."""


class IndexLockedError(PaiKbError):
    """Another process is writing to the same index."""


class VectorServerUnreachable(ConfigError):
    """The Chroma server that holds the index's vectors (`index.url`) does not answer: nothing was
    written (a sync resumes next run) or searched by meaning (keyword search needs no server)."""


class IndexWriteError(PaiKbError):
    """The index folder cannot be written: the disk is full, it is read-only, or permission is denied.
    The index as it was stays searchable."""


class MassRemoval(PaiKbError):
    """A sync would remove most of the index, which almost always means a folder vanished for a moment."""


class InvalidRequest(PaiKbError):
    """A request's arguments are malformed; nothing was done."""


class NoteNotFound(PaiKbError):
    """No indexable note answers to that path or name (outside the roots counts as not found)."""

    def __init__(self, message: str, suggestions: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.suggestions = suggestions


class SourceError(PaiKbError):
    """One file could not be read or parsed; the run goes on without it."""


class FileTooLarge(SourceError):
    """Over the size limit: skipped by its stat, so it is not read again until it changes."""


class LLMError(PaiKbError):
    """The model endpoint could not produce an answer."""


class LoaderTimeout(SourceError):
    """Loading one file ran past the per-file time budget (`pai_kb.loaders.LOAD_BUDGET_S`) and was abandoned."""
