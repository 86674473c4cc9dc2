"""pai-kb: a retrieval-centric personal knowledge engine.

The package is a library first; `pai_kb.cli` is a thin shell over `pai_kb.kb.KnowledgeBase`.
"""

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it)
