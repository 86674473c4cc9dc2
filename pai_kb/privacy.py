"""What leaves the machine. A note is local-only when its frontmatter says `private: true` or a
`privacy.local_only` pattern (gitignore rules, like `exclude`) matches its path. It is searchable here
(CLI, the page on loopback, `get`), but its text never goes to a model whose endpoint is not on loopback,
into `pai-kb context` output, into MCP results, or to an HTTP client that is not on loopback. Where
passages were held back, outputs say how many, never what.

The flag is decided when a file is indexed and stored with it (`Chunk.local_only`); a change of the
patterns is applied to every indexed file by the next sync (`KnowledgeBase.sync`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from pai_kb.models import Hit

__all__ = ["is_loopback_host", "leaves_machine", "withhold"]


def withhold(hits: Sequence[Hit]) -> tuple[list[Hit], int]:
    """(the hits whose notes may leave the machine, how many were held back)."""
    kept = [hit for hit in hits if not hit.chunk.local_only]
    return kept, len(hits) - len(kept)


def is_loopback_host(host: str | None) -> bool:
    """Whether `host` (a name or an address, IPv6 with or without brackets) is this machine's loopback."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def leaves_machine(url: str | None) -> bool:
    """Whether a request to `url` goes off this machine (anything but a loopback host)."""
    return url is not None and not is_loopback_host(urlsplit(url).hostname)
