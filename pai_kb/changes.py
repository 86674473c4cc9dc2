"""What changed since the last sync, decided before anything is written: the stat diff (`diff_stats`),
files read and hashed (`read_any`: notes whole, recordings block by block), content confirmation where a
stat cannot vouch for it (`confirm`), the refusal to remove most of an index at once (`removal_refusal`),
and the plan (`make_plan`), split into what is applied now and the recordings to transcribe first
(`split_plan`). All pure but the reading; `sync.Syncer` applies the plan."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pai_kb import audio
from pai_kb.config import Config
from pai_kb.errors import FileTooLarge, SourceError
from pai_kb.loaders import read_file
from pai_kb.manifest import FileState
from pai_kb.models import DocKey
from pai_kb.sources import SourceFile

__all__ = ["Plan", "Read", "StatDiff", "confirm", "content_hash", "diff_stats", "embed_hash", "keep_only", "make_plan",
           "observed", "plan_keys", "read_any", "read_recording", "read_source", "removal_refusal", "split_plan",
           "unmatched_patterns"]

# git's "racily clean" window: a file whose mtime or ctime is not this much older than the sync that
# read it may be written again within the same timestamp tick (FAT keeps 2 s, SMB servers and sync
# clients have clocks of their own), leaving its stat as recorded. Such a file is marked `recheck`
# and read again by the next sync; after that, only files edited recently are ever read twice.
_RACY_NS = 3_000_000_000


@dataclass(frozen=True)
class StatDiff:
    """Doc keys by how their stat differs from the index: on disk only, stat changed, indexed only."""
    new: tuple[str, ...]
    changed: tuple[str, ...]  # stat differs: content may or may not
    deleted: tuple[str, ...]
    unchanged: int
    recheck: tuple[str, ...] = ()  # stat is as recorded, but could not vouch for the content: read it


@dataclass(frozen=True)
class Plan:
    """What a sync will do, by doc key, decided from stats and content hashes before anything is written."""
    add: tuple[str, ...] = ()
    update: tuple[str, ...] = ()
    move: tuple[tuple[str, str], ...] = ()  # (old key, new key), identical content
    delete: tuple[str, ...] = ()
    touch: tuple[str, ...] = ()  # stat changed, content did not
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        """Nothing to add, update, move, delete or touch."""
        return not (self.add or self.update or self.move or self.delete or self.touch)


def diff_stats(disk: Mapping[str, SourceFile], indexed: Mapping[str, FileState]) -> StatDiff:
    """Compare by every stat field git compares (size, mtime, ctime, inode, in ns): a rewrite that puts
    mtime back still moves ctime. Files marked `recheck` go to `recheck`, to be read whatever their stat."""
    new, changed, recheck, unchanged = [], [], [], 0
    for key, source in disk.items():
        state = indexed.get(key)
        if state is None:
            new.append(key)
        elif (state.mtime_ns, state.size, state.ctime_ns, state.inode) != (
                source.mtime_ns, source.size, source.ctime_ns, source.inode):
            changed.append(key)
        elif state.recheck:
            recheck.append(key)
        else:
            unchanged += 1
    deleted = [key for key in indexed if key not in disk]
    return StatDiff(tuple(sorted(new)), tuple(sorted(changed)), tuple(sorted(deleted)), unchanged,
                    tuple(sorted(recheck)))


def observed(source: SourceFile, content_hash: str, started_ns: int) -> FileState:
    """The state to record for a file read by a sync that started walking at `started_ns` (wall clock,
    ns): marked `recheck` when its timestamps are not safely older than that (see `_RACY_NS`). A file
    skipped unread (a stand-in hash, which holds a `:`) is judged by its stat alone: never marked."""
    racy = ":" not in content_hash and max(source.mtime_ns, source.ctime_ns) > started_ns - _RACY_NS
    return FileState(source.mtime_ns, source.size, content_hash, source.ctime_ns, source.inode, racy)


@dataclass(frozen=True)
class Read:
    """One file read for a sync: its bytes and hash, or why not. `hash` without `data` is a stand-in
    (an oversize or unreadable file, recorded as skipped); no `hash` means it vanished meanwhile."""
    data: bytes | None
    hash: str | None
    problem: str | None = None


def read_source(source: SourceFile, max_bytes: int) -> Read:
    """Read and hash one file. Never raises: an unreadable file comes back with its reason."""
    key = source.key
    if source.problem:
        return Read(None, f"unreadable:{key}", f"{key}: {source.problem}")
    try:
        data = read_file(source.abspath, key, max_bytes)
    except FileTooLarge as exc:
        # Oversized files still get a hash of their stat, so they are skipped, not retried forever.
        return Read(None, f"oversize:{source.size}:{source.mtime_ns}", str(exc))
    except SourceError as exc:
        gone = isinstance(exc.__cause__, FileNotFoundError)
        return Read(None, None if gone else f"unreadable:{key}", str(exc))
    return Read(data, content_hash(data))


def read_recording(source: SourceFile, max_bytes: int) -> Read:
    """`read_source` for a recording: hashed from its file block by block, the data an
    `audio.Recording` (its first bytes, sha256 and path), so its bytes are never held in memory. The
    hash is `content_hash` of the whole bytes. Never raises."""
    key = source.key
    if source.problem:
        return Read(None, f"unreadable:{key}", f"{key}: {source.problem}")
    hasher = hashlib.blake2b(digest_size=16)  # content_hash's, fed the same bytes block by block
    try:
        recording = audio.read_recording(source.abspath, key, max_bytes, hasher)
    except FileTooLarge as exc:
        return Read(None, f"oversize:{source.size}:{source.mtime_ns}", str(exc))
    except SourceError as exc:
        gone = isinstance(exc.__cause__, FileNotFoundError)
        return Read(None, None if gone else f"unreadable:{key}", str(exc))
    return Read(recording, hasher.hexdigest())


def read_any(source: SourceFile, config: Config) -> Read:
    """`read_recording` for a recording (by its name, or by its first bytes under another name), else
    `read_source`, each with its own size limit (`audio.max_bytes`, `sources.max_file_bytes`). Never raises."""
    if audio.is_recording_name(source.key):
        return read_recording(source, config.audio_max_bytes)
    read = read_source(source, config.max_file_bytes)
    if read.data is not None and audio.is_media(read.data, named=False):  # a recording under a note's name
        return read_recording(source, config.max_file_bytes)
    return read


def confirm(diff: StatDiff, disk: Mapping[str, SourceFile], indexed: Mapping[str, FileState], config: Config,
            everything: bool = False) -> tuple[StatDiff, tuple[str, ...]]:
    """Settle by content what the stat cannot: the files marked `recheck`, or with `everything` every
    indexed file (one full read). Returns the diff with `changed` holding the files whose content is
    (or, unread, may be) not what the index holds, and the keys among them whose stat matched: edits
    the stat check could not see."""
    by_stat = set(diff.changed)
    todo = [k for k in disk if k in indexed] if everything else list(diff.recheck)
    differs = {k for k in todo if read_any(disk[k], config).hash != indexed[k].content_hash}
    changed = differs if everything else differs | by_stat
    unseen = tuple(sorted(differs - by_stat))
    unchanged = len(disk) - len(diff.new) - len(changed)
    return replace(diff, changed=tuple(sorted(changed)), recheck=(), unchanged=unchanged), unseen


def unmatched_patterns(patterns: Sequence[str], excluded: Mapping[str, int]) -> list[str]:
    """A warning for each exclude pattern that excludes no file (a `!` pattern re-includes, so it is
    not judged): a typo there leaves a private folder searchable."""
    return [f'exclude pattern "{p}" excludes no file: patterns follow .gitignore rules ("/Journal/" is the '
            'Journal folder at the top, "Journal/" any folder named Journal, "**" spans folders); fix or remove it'
            for p in patterns if not p.startswith("!") and not excluded.get(p, 0)]


# A sync may remove at most this share of the indexed files (when it removes more than _REMOVAL_FLOOR)
# without --allow-removal: more almost always means a folder vanished (an unmounted drive, a sync client
# mid-way, a typo in exclude), and re-embedding a whole vault afterwards costs an hour.
_REMOVAL_SHARE = 0.5
_REMOVAL_FLOOR = 20


def removal_refusal(diff: StatDiff, indexed_count: int, roots: Mapping[str, Path]) -> str | None:
    """Why this diff must not be applied without the person's say-so, or None when it is safe."""
    deleted = len(diff.deleted)
    if not deleted:
        return None
    for name, root in roots.items():
        gone = sum(1 for key in diff.deleted if DocKey.parse(key).root == name)
        if gone and not _has_entries(root):
            state = "is missing" if not root.exists() else "is empty"
            return f"the {name} folder {root} {state}, which would remove {gone} indexed files"
    if deleted > _REMOVAL_FLOOR and deleted > indexed_count * _REMOVAL_SHARE:
        return f"{deleted} of {indexed_count} indexed files are gone from disk"
    return None


def _has_entries(root: Path) -> bool:
    try:
        return root.is_dir() and any(True for _ in root.iterdir())
    except OSError:
        return False


def make_plan(diff: StatDiff, hashes: Mapping[str, str], indexed: Mapping[str, FileState]) -> Plan:
    """`hashes` holds the content hash (or `Read`'s stand-in) of every new, changed and recheck file
    that is still there. A recheck file whose content is unchanged is touched (its state re-recorded)."""
    by_hash: dict[str, list[str]] = {}
    for key in diff.deleted:
        by_hash.setdefault(indexed[key].content_hash, []).append(key)
    add, move = [], []
    for key in diff.new:
        olds = by_hash.get(hashes.get(key, ""), [])
        if olds:
            move.append((olds.pop(0), key))
        else:
            add.append(key)
    moved_from = {old for old, _ in move}
    by_stat = diff.changed + diff.recheck
    update = [k for k in by_stat if hashes.get(k) != indexed[k].content_hash]
    touch = [k for k in by_stat if k in hashes and hashes[k] == indexed[k].content_hash]
    delete = [k for k in diff.deleted if k not in moved_from]
    return Plan(tuple(add), tuple(update), tuple(move), tuple(delete), tuple(touch), diff.unchanged)


def content_hash(data: bytes) -> str:
    """A file's identity by content: 32 hex digits of BLAKE2b."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def embed_hash(text: str) -> str:
    """What a chunk's vector depends on (the text the model sees): 32 hex digits of BLAKE2b."""
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def split_plan(plan: Plan, data: Mapping[str, bytes], config: Config) -> tuple[Plan, Plan | None]:
    """(what to apply now, recordings to transcribe first): added, updated or moved files whose bytes
    are a recording without a cached transcript go to the second plan, everything else stays in the first.
    The second is None when there is nothing to transcribe."""
    def waits(key: str) -> bool:
        return (key in data and audio.is_media(data[key], audio.is_recording_name(key))
                and not audio.usable(audio.read_cached(data[key]), config))

    later_keys = {k for k in list(plan.add) + list(plan.update) + [new for _, new in plan.move] if waits(k)}
    if not later_keys:
        return plan, None
    now = replace(plan, add=_without(plan.add, later_keys), update=_without(plan.update, later_keys),
                  move=tuple(m for m in plan.move if m[1] not in later_keys))
    later = Plan(add=_only(plan.add, later_keys), update=_only(plan.update, later_keys),
                       move=tuple(m for m in plan.move if m[1] in later_keys))
    return now, later


def keep_only(plan: Plan, keys: set[str]) -> Plan:
    """`plan` restricted to the files `keys` (add, update and move targets)."""
    return replace(plan, add=_only(plan.add, keys), update=_only(plan.update, keys),
                   move=tuple(m for m in plan.move if m[1] in keys))


def plan_keys(plan: Plan) -> list[str]:
    """The files a plan writes (add, update, move targets), in plan order."""
    return list(plan.add) + list(plan.update) + [new for _, new in plan.move]


def _without(keys: Iterable[str], drop: set[str]) -> tuple[str, ...]:
    return tuple(k for k in keys if k not in drop)


def _only(keys: Iterable[str], kept: set[str]) -> tuple[str, ...]:
    return tuple(k for k in keys if k in kept)
