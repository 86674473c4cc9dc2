"""Obsidian write-back: the only code in pai-kb that writes into the vault, and only into its own
designated folders (`Config.clippings_folder`, `transcripts_folder`, `answers_folder`).

Inbox clips and transcripts become notes (frontmatter, headings, timestamped sections) so they show up in
Obsidian; the originals stay in the inbox. Recordings (audio or video, in the vault or the inbox, once
transcribed) become transcript notes too, a `[00:12:34]` stamp on every line, with the recording embedded
at the top so it plays in Obsidian (`recording_note`, `recording_link`). pai-kb never writes beside the
person's own files, so a recording's note is not put next to the recording: it goes into the transcripts
folder, and links back to it. A note pai-kb wrote is updated on re-ingest only while it is exactly what
pai-kb wrote; once the person has edited it, a new version is written beside it instead.
A materialised note names its original (`pai-kb-source`), so search returns one copy of the material.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from pai_kb import audio
from pai_kb.answer import Answer
from pai_kb.errors import ConfigError
from pai_kb.loaders.markdown import escape_markdown
from pai_kb.loaders.obsidian import escape, valid_tag
from pai_kb.models import Document, timestamp
from pai_kb.urls import url_at

__all__ = ["Written", "answer_note", "clip_note", "designated", "inside", "item_note", "recording_link",
           "recording_note", "safe_name", "save_answer", "write_versioned"]

SOURCE_KEY = "pai-kb-source"
_UNSAFE = re.compile(r'[\\/:*?"<>|#^\[\]\x00-\x1f]+')
_SECTION_S = 60  # transcript notes get one timestamped section per minute or so
# What a wikilink to a file cannot hold: it would end the link, start its heading, block or alias part,
# or a comment, or break the line. Such a recording is embedded by a markdown link instead.
_UNLINKABLE = re.compile(r"[\[\]|#^\x00-\x1f\x7f]|%%")


@dataclass(frozen=True)
class Written:
    """One note written into the vault: what it came from, its vault-relative path, and what was done."""
    source: str  # inbox key, or the question for a saved answer
    path: str  # relative to the vault
    action: str  # created | updated | unchanged | new-version


def digest(text: str) -> str:
    """The first 16 hex digits of `text`'s SHA-256 (UTF-8): how a written note is recognised unchanged."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# File systems limit a name to 255 *bytes* (a CJK character is three); this leaves room for " (99).md".
_NAME_BYTES = 200


def safe_name(title: str, fallback: str = "Untitled") -> str:
    """A file name Obsidian and every OS accept: no path separators, no leading dots, at most
    _NAME_BYTES bytes of UTF-8, cut on a character boundary."""
    name = " ".join(_UNSAFE.sub(" ", title).split())
    name = name.encode("utf-8")[:_NAME_BYTES].decode("utf-8", "ignore").strip(". ")
    return name or fallback


def inside(folder: Path, target: Path) -> Path:
    """`target` when it resolves inside `folder`. Raises ConfigError when it leads outside (a symlink, `..`)."""
    if not target.resolve().is_relative_to(folder.resolve()):
        raise ConfigError(f"refusing to write {target}: outside the designated folder {folder}")
    return target


def designated(vault: Path, folder: str) -> Path:
    """The vault folder pai-kb may write into, created if needed; refused when it (or a symlink on the
    way) leads outside the vault: raises ConfigError then."""
    target = vault / folder
    if not target.resolve().is_relative_to(vault.resolve()):
        raise ConfigError(f"refusing to write into {target}: it leads outside the vault (a symlink?); "
                          "point the obsidian.*_folder setting at a real folder inside the vault")
    target.mkdir(parents=True, exist_ok=True)
    return target


def clip_note(doc: Document, source_key: str, source_hash: str, private: bool = False) -> str:
    """The markdown note for an inbox item. Deterministic: the same item always gives the same note.
    Every text copied in is made literal for Obsidian (see `escape_markdown`, `_frontmatter`), and the
    tags are valid Obsidian tags, so the note holds no tag or link its material did not mean. `private`
    (the item is local-only) writes `private: true`, so the copy never leaves the machine either."""
    meta: dict[str, Any] = {"title": doc.title}
    if doc.url:
        meta["source"] = doc.url
    for key in ("author", "published", "site"):
        if doc.metadata.get(key):
            meta[key] = doc.metadata[key]
    tags = {tag for t in doc.tags if (tag := valid_tag(t))}
    meta["tags"] = sorted({*tags, "clippings" if doc.source_type == "webclip" else "transcript"})
    if private:
        meta["private"] = True
    meta[SOURCE_KEY] = source_key
    meta["pai-kb-hash"] = source_hash
    body = _transcript_body(doc) if doc.source_type == "transcript" else _clip_body(doc)
    return f"---\n{_frontmatter(meta)}\n---\n\n{body}\n"


def recording_note(doc: Document, source_key: str, source_hash: str, player: str, private: bool = False) -> str:
    """The transcript note of a recording: frontmatter (title, `duration` as HH:MM:SS when the document's
    metadata gives `duration_s`, the `transcript` tag, `private: true` when the recording is local-only,
    `pai-kb-source` naming the recording's doc key, `pai-kb-hash` its content hash), the title as heading,
    `player` (the line that plays it, see `recording_link`), then a `## HH:MM:SS` section every minute or
    so, holding one paragraph per segment of speech, each `[HH:MM:SS] words`. `doc` is the recording's
    transcript document (`audio.load_audio`: blocks with `start_s`). Deterministic, and every word is made
    literal for Obsidian (see `escape_markdown`), so the note reads back as the words that were said: no
    tag, link, comment or heading the speech did not mean. A recording without speech gets the heading
    and the player alone."""
    meta: dict[str, Any] = {"title": doc.title}
    duration = doc.metadata.get("duration_s")
    if isinstance(duration, (int, float)):
        meta["duration"] = timestamp(duration)
    meta["tags"] = sorted({*(tag for t in doc.tags if (tag := valid_tag(t))), "transcript"})
    if private:
        meta["private"] = True
    meta[SOURCE_KEY] = source_key
    meta["pai-kb-hash"] = source_hash
    out = [f"# {escape_markdown(doc.title)}", player]
    section: float | None = None
    for block in doc.blocks:
        words = " ".join(block.text.split())
        if not words:
            continue
        start = block.start_s or 0.0
        if section is None or start - section >= _SECTION_S:
            section = start
            out.append(f"## {timestamp(start)}")
        # The stamp opens the line, so no word of the speech can start a heading, list, quote or fence
        # there; the line is escaped whole, as it will be read (a fence marker after the stamp is text).
        out.append(escape_markdown(f"[{timestamp(start)}] {words}"))
    return f"---\n{_frontmatter(meta)}\n---\n\n" + "\n\n".join(out) + "\n"


def item_note(doc: Document, data: bytes, source_key: str, content_hash: str, folder: str, original: Path,
              private: bool = False) -> str:
    """The note for one indexed item, to be written into the vault folder `folder`: `recording_note`
    (playing `original`) when `data` is a recording, by its bytes as the loaders know one, else
    `clip_note`. `source_key` is the item's doc key (`inbox/...`, or `vault/...` for a recording)."""
    root, _, path = source_key.partition("/")
    if audio.is_media(data, audio.is_recording_name(path)):
        return recording_note(doc, source_key, content_hash, recording_link(root, path, folder, original), private)
    return clip_note(doc, source_key, content_hash, private)


def recording_link(root: str, path: str, folder: str, original: Path) -> str:
    """The line of a recording's note (written into the vault folder `folder`) that plays the recording
    `path` of `root`. A vault recording is embedded, so Obsidian plays it in the note:
    `![[Meetings/talk.m4a]]` (its path in the vault), or, when the name holds what a wikilink cannot
    (`[`, `]`, `|`, `#`, `^`, `%%`, a control character), a markdown embed with the path relative to
    `folder`, percent-encoded: `![talk](../Meetings/a%23b.m4a)`. A recording in the inbox lies outside
    the vault, where Obsidian embeds nothing: it gets a link to `original` (its absolute path) as a
    `file://` URL, which opens it in the system's player."""
    name = PurePosixPath(path).name
    if root != "vault":
        return f"Recording: [{_link_text(name)}]({original.absolute().as_uri()})"
    if not _UNLINKABLE.search(path):
        return f"![[{path}]]"
    relative = "../" * len(PurePosixPath(folder).parts) + path
    shown = _link_text(PurePosixPath(path).stem)
    return f"![{shown}]({urllib.parse.quote(relative, safe='/')})"


def _frontmatter(meta: dict[str, Any]) -> str:
    """YAML for a note pai-kb writes. In a property only `[[...]]` means something (a link), so in
    text values it is escaped as `\\[\\[...\\]\\]`, which the loader reads back as the text `[[...]]`."""
    return yaml.safe_dump({k: _literal(v) for k, v in meta.items()}, allow_unicode=True, sort_keys=False).strip()


def _literal(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("[[", "\\[\\[").replace("]]", "\\]\\]")
    if isinstance(value, list):
        return [_literal(v) for v in value]
    return value


def _clip_body(doc: Document) -> str:
    """The material's blocks; its properties are already in the frontmatter, and code stays verbatim."""
    parts = []
    for block in doc.blocks:
        if block.kind == "heading":
            parts.append(f"{'#' * max(1, block.level)} {escape_markdown(block.text)}")
        elif block.kind in ("code", "html"):
            parts.append(block.text)
        elif block.kind != "properties":
            parts.append(escape_markdown(block.text))
    return "\n\n".join(parts)


def _transcript_body(doc: Document) -> str:
    sections: list[tuple[float, list[str]]] = []
    for block in doc.blocks:
        start = block.start_s or 0.0
        if not sections or start - sections[-1][0] >= _SECTION_S:
            sections.append((start, []))
        sections[-1][1].append(escape_markdown(block.text))
    out = [f"# {escape_markdown(doc.title)}"]
    for start, texts in sections:
        stamp = timestamp(start)
        link = url_at(doc.url, start) if doc.url else None
        out.append(f"## [{stamp}]({link})" if link and link != doc.url else f"## {stamp}")
        out.append(" ".join(texts))
    return "\n\n".join(out)


def write_versioned(folder: Path, vault: Path, name: str, text: str, previous: tuple[str, str] | None,
                    source: str, restore: bool = False) -> tuple[Written, str]:
    """Write `text` as `name` in `folder`, respecting edits: returns what was done and the written hash.
    A note pai-kb wrote that the person deleted stays deleted unless `restore` is asked for."""
    target = inside(folder, vault / previous[0]) if previous else inside(folder, folder / f"{name}.md")
    new_hash = digest(text)
    if previous is not None and not target.exists() and not restore:
        return Written(source, previous[0], "deleted-by-you"), previous[1]
    if target.exists():
        current = digest(target.read_text(encoding="utf-8", errors="replace"))
        ours = previous is not None and current == previous[1]
        if ours and current == new_hash:
            return Written(source, _rel(vault, target), "unchanged"), new_hash
        if not ours:
            target = _free_name(folder, name)
            target.write_text(text, encoding="utf-8")
            return Written(source, _rel(vault, target), "new-version"), new_hash
        target.write_text(text, encoding="utf-8")
        return Written(source, _rel(vault, target), "updated"), new_hash
    target.write_text(text, encoding="utf-8")
    return Written(source, _rel(vault, target), "created"), new_hash


def _free_name(folder: Path, name: str) -> Path:
    n = 2
    while (candidate := folder / f"{name} ({n}).md").exists():
        n += 1
    return inside(folder, candidate)


def _rel(vault: Path, target: Path) -> str:
    return target.resolve().relative_to(vault.resolve()).as_posix()


def answer_note(answer: Answer, vault_name: str | None = None) -> str:
    """A saved answer: the question, the answer with its [n] markers, and the sources as wikilinks. The
    question, the answer and the headings it quotes are made literal for Obsidian (a heading
    `Thoughts on the #metoo movement` in a passage is text, not a tag)."""
    meta = {"question": answer.question, "date": dt.date.today().isoformat(), "model": answer.model or "extractive",
            "grounded": answer.grounded, "tags": ["pai-kb/answer"]}
    lines = [f"# {escape_markdown(answer.question)}", "", escape_markdown(answer.text), "", "## Sources", ""]
    # A bullet with the number in brackets, not "7." (an ordered list, which Markdown renumbers 1, 2, 3,
    # so the answer's [7] would point at nothing).
    for s in answer.shown:
        c = s.first
        if c.root == "vault":
            section = _link_heading(c.heading.split(" > ")[-1]) if " > " in c.heading else ""
            target = str(PurePosixPath(c.path).with_suffix("")) + (f"#{section}" if section else "")
            lines.append(f"- [{s.n}] [[{target}]] (lines {s.line_start}-{s.line_end})")
        else:
            where = f"[{_link_text(c.title)}]({c.url})" if c.url else f"`{c.root}/{c.path}`"
            lines.append(f"- [{s.n}] {where}" + (f" @ {timestamp(c.start_s)}" if c.start_s is not None else ""))
    return f"---\n{_frontmatter(meta)}\n---\n\n" + "\n".join(lines) + "\n"


def _link_heading(heading: str) -> str:
    """A heading as a wikilink names it: Obsidian's own links put a space for the characters that would
    end the link or start another part of it (`#`, `|`, `^`, `:`, `%%`, brackets)."""
    return " ".join(re.sub(r"[#|^:\[\]]|%%", " ", heading).split())


def _link_text(text: str) -> str:
    """Text shown inside `[...](url)`: literal for Obsidian, and without a bracket that ends it early."""
    return re.sub(r"(?<!\\)([\[\]])", r"\\\1", escape(text))


def save_answer(answer: Answer, vault: Path, folder: str) -> Path:
    """Write `answer` as a new note `YYYY-MM-DD question.md` in the vault's `folder` (a free name when taken);
    returns its path. Raises ConfigError when the folder or note would lie outside the vault; OSError when
    it cannot be written."""
    target_dir = designated(vault, folder)
    name = safe_name(f"{dt.date.today().isoformat()} {answer.question}")
    target = inside(target_dir, target_dir / f"{name}.md")
    if target.exists():
        target = _free_name(target_dir, name)
    target.write_text(answer_note(answer), encoding="utf-8")
    return target
