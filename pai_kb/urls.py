"""URLs: links that open a video at the moment a passage was said, and endpoints safe to show."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["redacted", "url_at"]


def url_at(url: str | None, seconds: float | None) -> str | None:
    """YouTube takes `t=754s` in the query (`youtu.be` too), Vimeo `#t=754s`; other sites are left as
    they are, since an unknown parameter could break the link."""
    if not url or seconds is None:
        return url
    parts = urlsplit(url)
    host = parts.netloc.lower().removeprefix("www.").removeprefix("m.")
    t = f"{int(seconds)}s"
    if host in ("youtube.com", "youtu.be", "music.youtube.com"):
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "t"]
        return urlunsplit(parts._replace(query=urlencode(query + [("t", t)])))
    if host == "vimeo.com":
        return urlunsplit(parts._replace(fragment=f"t={t}"))
    return url


def redacted(url: str) -> str:
    """The URL without `user:password@`: endpoints are shown in errors and logs, credentials never."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
