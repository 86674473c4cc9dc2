"""The one exception tree of pai-kb.

Library code raises these; the CLI translates them once into a one-line message and exit 1, so every
message must say what went wrong *and* what the person can do about it.
"""


class PaiKbError(Exception):
    """Base of every error pai-kb raises on purpose."""


class ConfigError(PaiKbError):
    """A setting, config file or path given by the person is unusable."""


class IndexMismatchError(PaiKbError):
    """The index was built with another model or chunker; mixing vectors would give wrong answers."""


class IndexLockedError(PaiKbError):
    """Another process is writing to the same index."""


class SourceError(PaiKbError):
    """One file could not be read or parsed; the run goes on without it."""
