"""The command line: parse arguments, make one library call, print. No logic lives here."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pai_kb import render
from pai_kb.client import remote_search
from pai_kb.config import Config, load_config
from pai_kb.errors import BadSetting, InvalidRequest, PaiKbError
from pai_kb.models import MAX_ASK_K, MAX_K, MODES, SOURCE_TYPES, AskRequest, SearchRequest, checked_date

if TYPE_CHECKING:
    from pai_kb.kb import KnowledgeBase

_MAX_WARNINGS = 20
# Without a terminal, long runs print a progress line at most this often: enough for a log, not a flood.
_PLAIN_PROGRESS_S = 30.0


class _Group(click.Group):
    """Every library error becomes one line on stderr, in one place: exit 2 for a bad setting or
    request (usage), 1 for everything else."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        given = list(args)
        ctx = super().make_context(info_name, args, parent, **extra)
        ctx.meta["argv"] = given  # for messages that quote what was typed
        return ctx

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as exc:
            typed = next((a for a in ctx.meta.get("argv", ()) if a.startswith(exc.option_name)), exc.option_name)
            exc.message = (f"{exc.message.rstrip('.')}; to give text that begins with '-', put -- before it: "
                           f"pai-kb {ctx.invoked_subcommand or 'search'} -- {typed}")
            raise
        except (BadSetting, InvalidRequest) as exc:
            raise click.UsageError(render.inert(str(exc))) from exc
        except PaiKbError as exc:
            raise click.ClickException(render.inert(str(exc))) from exc


def _path_given(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    """An empty path is refused as empty (click would read "" as the current folder)."""
    if value is not None and not value.strip():
        raise click.BadParameter("is empty; give a folder or file path", ctx, param)
    return Path(value) if value is not None else None


class _Date(click.ParamType):
    """A calendar date written YYYY-MM-DD, checked by the library's one rule (`checked_date`)."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return checked_date(str(value), "")
        except InvalidRequest as exc:
            self.fail(str(exc), param, ctx)


def root_options(fn: Callable) -> Callable:
    """--vault/--inbox/--index/--config, accepted before the command and after it alike."""
    for option in reversed((
        click.option("--vault", callback=_path_given, help="Obsidian vault folder [./vault]."),
        click.option("--inbox", callback=_path_given, help="Drop folder for clips and transcripts."),
        click.option("--index", "index_dir", callback=_path_given,
                     help="Index folder [the vault's own setting, else one in your user data folder]."),
        click.option("--config", "config_file", callback=_path_given, help="pai-kb.toml to use."),
        click.option("--vault-anywhere", is_flag=True, default=None,
                     help="Allow a vault or inbox that is a disk root, your home folder or a system folder."),
    )):
        fn = option(fn)
    return fn


_ROOT_KEYS = ("vault", "inbox", "index_dir", "config_file", "vault_anywhere")


@click.group(cls=_Group)
@root_options
@click.version_option(package_name="pai-kb")
@click.pass_context
def main(ctx: click.Context, **flags: object) -> None:
    """pai-kb: your notes, clips and transcripts as your assistant's ground truth."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ctx.obj = _Lazy(flags)


class _Lazy:
    """Config is built when a command runs, so `--help` works even with a broken config file."""

    def __init__(self, flags: dict) -> None:
        self.flags = flags

    def given(self, args: dict[str, Any]) -> "_Lazy":
        """Root options given after the command win over the same ones given before it."""
        for key in _ROOT_KEYS:
            value = args.pop(key, None)
            if value is not None:
                self.flags[key] = value
        return self

    def config(self) -> Config:
        return load_config(self.flags)

    @contextmanager
    def kb(self) -> Iterator[KnowledgeBase]:
        from pai_kb.kb import KnowledgeBase  # imported late: a search through a server never needs it

        kb = KnowledgeBase(self.config())
        try:
            yield kb
        finally:
            kb.close()

    @contextmanager
    def eval_index(self) -> Iterator[tuple[Callable[[Path, Path], KnowledgeBase], Path]]:
        """A KnowledgeBase factory over the evaluation corpus, and where its index lives."""
        from pai_kb.kb import KnowledgeBase

        base = load_config({k: v for k, v in self.flags.items() if k != "vault"})

        def make(vault: Path, index_dir: Path) -> KnowledgeBase:
            return KnowledgeBase(base.replace(vault=vault, inbox=None, index_dir=index_dir, exclude=()))

        if self.flags.get("index_dir"):
            yield make, base.index_dir
            return
        with tempfile.TemporaryDirectory(prefix="pai-kb-eval-") as tmp:
            yield make, Path(tmp)


def command(*args: Any, **kwargs: Any) -> Callable:
    """A subcommand that takes the root options too, and receives the `_Lazy` with them applied."""
    def decorate(fn: Callable) -> Callable:
        def run(lazy: _Lazy, **params: Any) -> Any:
            return fn(lazy.given(params), **params)
        run.__name__, run.__doc__ = fn.__name__, fn.__doc__
        run.__click_params__ = list(getattr(fn, "__click_params__", []))  # type: ignore[attr-defined]
        return main.command(*args, **kwargs)(root_options(click.pass_obj(run)))
    return decorate


def filter_options(fn: Callable) -> Callable:
    """--type/--tag/--path/--since, shared by every query command."""
    for option in reversed((
        click.option("--type", "types", multiple=True, type=click.Choice(SOURCE_TYPES),
                     help="Only this kind of material (repeatable)."),
        click.option("--tag", "tags", multiple=True, help="Only material with this tag or a tag nested under it (repeatable, all must match)."),
        click.option("--path", "path_glob", help="Only paths matching this glob, relative to the vault or inbox."),
        click.option("--since", type=_Date(), help="Only material dated on or after YYYY-MM-DD."),
    )):
        fn = option(fn)
    return fn


@command()
@click.option("--rebuild", is_flag=True, help="Drop the index and build it again (after changing model or chunking).")
@click.option("--allow-removal", is_flag=True,
              help="Remove files from the index even when most of them, or a whole folder, are gone.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def index(lazy: _Lazy, rebuild: bool, allow_removal: bool, as_json: bool) -> None:
    """Bring the index up to date with the vault and the inbox."""
    with _interruptible():
        with lazy.kb() as kb, _progress("Indexing") as progress:
            report = kb.index(rebuild=rebuild, progress=progress, allow_removal=allow_removal)
    _warn(report.warnings)
    click.echo(render.dumps(render.report_dict(report)) if as_json else render.report_text(report))


@command()
@click.argument("query")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, MAX_K), help="Results to return.")
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True)
@click.option("--per-note", type=click.IntRange(1), help="At most this many passages per note.")
@filter_options
@click.option("--local", is_flag=True, help="Search in this process even when a pai-kb server is running.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def search(lazy: _Lazy, query: str, k: int, mode: str, per_note: int | None, local: bool, as_json: bool,
           **filter_args: Any) -> None:
    """Find the passages that answer QUERY.

    When `pai-kb serve` (or `watch --serve`) runs on the same index, the search is sent to it (much
    faster than loading the model); --local or server.use = false in pai-kb.toml turns that off."""
    a = filter_args
    request = SearchRequest.of(query, k, mode, per_note, a["types"], a["tags"], a["path_glob"], a["since"])
    config = lazy.config()
    if config.use_server and not local and config.vault.is_dir():
        payload = remote_search(config.index_dir, request, config.token)
        if payload is not None:
            click.echo(render.dumps(payload) if as_json else
                       render.search_text(render.hits_from_json(payload), config.vault.name, links=sys.stdout.isatty()))
            return
    with lazy.kb() as kb:
        hits = kb.search(request)
    if as_json:
        click.echo(render.dumps(render.request_dict(request, hits, config.vault.name)))
    else:
        click.echo(render.search_text(hits, config.vault.name, links=sys.stdout.isatty()))


@command()
@click.argument("question")
@click.option("-k", "k", default=8, show_default=True, type=click.IntRange(1, MAX_ASK_K), help="Passages to retrieve.")
@click.option("--no-llm", is_flag=True, help="Answer with the best passages instead of calling the model.")
@click.option("--save", is_flag=True, help="Also write the answer as a note in the vault's answers folder.")
@filter_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (no streaming).")
def ask(lazy: _Lazy, question: str, k: int, no_llm: bool, save: bool, as_json: bool, **filter_args: Any) -> None:
    """Answer QUESTION from your notes, citing them, or say that they do not cover it."""
    a = filter_args
    request = AskRequest.of(question, k, not no_llm, a["types"], a["tags"], a["path_glob"], a["since"])
    stream = None if as_json else (lambda token: click.echo(render.inert(token), nl=False))
    with lazy.kb() as kb:
        answer = kb.ask(request, on_token=stream)
        vault = kb.config.vault.name
        saved = kb.save_answer(answer) if save else None
    if as_json:
        click.echo(render.dumps(render.answer_dict(answer, vault)))
    else:
        click.echo(render.answer_text(answer, streamed=stream is not None and answer.model is not None,
                                      vault=vault, links=sys.stdout.isatty()))
    if saved:
        click.echo(f"saved to {saved}", err=True)
    elif save:
        click.echo("not saved: your notes do not cover this, so there is no answer to keep", err=True)


@command()
@click.argument("prompt", required=False)
@click.option("--budget", type=click.IntRange(200, 100_000), help="Characters of notes at most [context.budget_chars: 4000].")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.1, 600), help="Seconds before giving up, printing "
              "nothing [context.timeout_s: 2].")
@click.option("--local", is_flag=True, help="Search in this process even when a pai-kb server is running.")
def context(lazy: _Lazy, prompt: str | None, budget: int | None, timeout_s: float | None, local: bool) -> None:
    """Grounding for an assistant's hook: the passages of your notes that bear on PROMPT (or on the hook
    event JSON read from stdin: Claude Code's UserPromptSubmit or SessionStart), cited and fenced as data.

    Prints nothing when the notes do not cover the prompt or it asks nothing ("yes", a slash command).
    Never fails the assistant: any problem is one line on stderr and exit status 0."""
    from pai_kb import context as grounding

    try:
        event = grounding.parse_event(prompt, None if prompt is not None else sys.stdin.read())
        result = grounding.ground(lazy.config(), event, budget, timeout_s, use_server=not local)
        output = grounding.hook_json(event, result.text)
    except Exception as exc:  # noqa: BLE001 - a hook must never fail the assistant
        result, output = grounding.Grounding(note=f"no context: {' '.join(str(exc).split())[:300]}"), ""
    if output:
        click.echo(output)
    if result.note:
        click.echo(f"pai-kb context: {render.inert(result.note)}", err=True)
    if result.timed_out:  # retrieval still runs in a thread: leave without waiting for it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@command()
@click.argument("note")
@click.option("--root", type=click.Choice(["vault", "inbox"]),
              help="NOTE is a path under this root (default: look NOTE up by path or title in the index).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def get(lazy: _Lazy, note: str, root: str | None, as_json: bool) -> None:
    """Print NOTE (a path or a title), or some of its lines: NOTE:12 or NOTE:12-30."""
    with lazy.kb() as kb:
        found = kb.note(note, root=root)
    click.echo(render.dumps(render.note_dict(found)) if as_json else render.inert(found.text))


@command()
@click.option("--restore", is_flag=True, help="Write again the notes you deleted (otherwise they stay deleted).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def materialize(lazy: _Lazy, restore: bool, as_json: bool) -> None:
    """Write indexed inbox clips and transcripts, and transcribed recordings (vault or inbox), as notes in
    the vault's Clippings/ and Transcripts/ folders; a recording's note has a [00:12:34] stamp on every
    line and plays the recording. A note you have edited is never overwritten: a new version is written
    beside it."""
    with lazy.kb() as kb:
        written = kb.materialize(restore=restore)
    if as_json:
        click.echo(render.dumps({"notes": [vars(w) for w in written]}))
    else:
        click.echo(render.inert("\n".join(f"{w.action:<12} {w.path}  (from {w.source})" for w in written))
                   or "Nothing to write.")


@command()
@click.argument("note")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 100), help="Notes to return.")
@click.option("--new-only", is_flag=True, help="Leave out notes NOTE already links to.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def related(lazy: _Lazy, note: str, k: int, new_only: bool, as_json: bool) -> None:
    """Notes most related to NOTE (a path relative to the vault, or a note title)."""
    with lazy.kb() as kb:
        notes = kb.related(note, k=k, new_only=new_only)
        vault = kb.config.vault.name
    click.echo(render.dumps(render.related_dict(note, notes, vault)) if as_json else render.related_text(notes))


@command(name="eval")
@click.option("--self", "on_self", is_flag=True,
              help="Measure search on this vault with questions it labels itself (aliases, links, headings).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True,
              help="With --self: questions of each kind at most.")
@click.option("--corpus", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="BEIR corpus.jsonl ({_id, title, text} per line).")
@click.option("--queries", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="BEIR queries.jsonl ({_id, text} per line).")
@click.option("--qrels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="BEIR qrels TSV (query-id, corpus-id, score).")
@click.option("--mode", "modes", multiple=True, type=click.Choice(MODES), help="Modes to run [all].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def eval_(lazy: _Lazy, on_self: bool, limit: int, corpus: Path | None, queries: Path | None, qrels: Path | None,
          modes: tuple[str, ...], as_json: bool) -> None:
    """Measure retrieval: on this vault (--self), or on a BEIR dataset (--corpus, --queries, --qrels).

    --self prints hit@5 and MRR@10 per mode, per kind of question and per source type, and the
    abstention threshold that separates this vault's questions from off-topic probes. A BEIR run prints
    nDCG@10, Recall@10/100, MRR@10 and latency per mode; its index goes to a temporary folder, or to
    --index when given (reused by later runs)."""
    if on_self:
        with lazy.kb() as kb:
            report = kb.self_evaluate(modes or MODES, limit)
        click.echo(render.dumps(render.self_eval_dict(report)) if as_json else render.self_eval_text(report))
        return
    if corpus is None or queries is None or qrels is None:
        raise click.UsageError("give --self, or all three of --corpus, --queries and --qrels")
    from pai_kb.evaluation import run_eval

    with lazy.eval_index() as (make_kb, index_dir), _progress("Indexing corpus") as progress:
        figures, judged = run_eval(make_kb, corpus, queries, qrels, index_dir, modes or MODES, progress)
    click.echo(render.dumps(render.eval_dict(figures, judged)) if as_json else render.eval_text(figures, judged))


@command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--verify", is_flag=True, help="Read every file and compare its content with the index, "
              "for edits that kept size and times (FAT, SMB); slower: one full read.")
def status(lazy: _Lazy, as_json: bool, verify: bool) -> None:
    """What the index holds and what on disk it does not reflect yet, files skipped and why, and
    recordings waiting for transcription (with their minutes of audio) or skipped."""
    with lazy.kb() as kb:
        st = kb.status(verify=verify)
    click.echo(render.dumps(render.status_dict(st)) if as_json else render.status_text(st))


@command()
@click.option("--reconcile", default=300.0, show_default=True, type=click.FloatRange(5),
              help="Seconds between full reconciliations, for events the OS dropped.")
@click.option("--json", "as_json", is_flag=True, help="Log one JSON object per line.")
@click.option("--serve", "serve_api", is_flag=True, help="Also serve the HTTP API from this process.")
@click.option("--host", default="127.0.0.1", show_default=True, help="With --serve: address to bind.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535), help="With --serve: port.")
def watch(lazy: _Lazy, reconcile: float, as_json: bool, serve_api: bool, host: str, port: int) -> None:
    """Keep the index in step with the vault and the inbox until stopped (Ctrl-C or SIGTERM).

    Catches up with everything that changed while it was not running, then follows changes. It holds
    the index's writer lock: `pai-kb index` on the same index is refused while it runs."""
    import logging
    import signal

    from pai_kb.watch import Watcher, WatchSettings

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(render.JsonLogFormatter() if as_json else logging.Formatter("%(asctime)s %(message)s"))
    logging.getLogger("pai_kb").addHandler(handler)
    logging.getLogger("pai_kb").setLevel(logging.INFO)
    with lazy.kb() as kb:
        kb.check_vault()
        watcher = Watcher(kb, WatchSettings(reconcile_s=reconcile))
        if serve_api:
            _serve_in_background(lazy, host, port)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: watcher.interrupt())
        logging.getLogger("pai_kb.watch").info("watching %s", render.inert(", ".join(str(p) for p in kb.roots.values())))
        watcher.run()
        logging.getLogger("pai_kb.watch").info("stopped")


@command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; anything but loopback needs PAI_KB_TOKEN.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
def serve(lazy: _Lazy, host: str, port: int) -> None:
    """Serve the HTTP JSON API (search, ask, notes, related, status; OpenAPI at /openapi.json), the page
    at /, and MCP over Streamable HTTP at /mcp, all behind the same Host, Origin and token rules."""
    from pai_kb.mcp_server import HttpEndpoint
    from pai_kb.server import listen, serve as run_server

    with lazy.kb() as kb:
        sock = listen(host, port, kb.config.token)
        click.echo(f"pai-kb API on http://{host}:{port} (OpenAPI: /openapi.json, MCP: /mcp)", err=True)
        run_server(kb, sock, kb.config.token, HttpEndpoint(kb))


@command()
@click.option("--http", "over_http", is_flag=True, help="Speak Streamable HTTP at http://HOST:PORT/mcp (with the "
              "JSON API beside it, behind the same Host, Origin and token checks) instead of stdio.")
@click.option("--host", default="127.0.0.1", show_default=True, help="With --http: address to bind; anything but "
              "loopback needs PAI_KB_TOKEN.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535), help="With --http: port.")
def mcp(lazy: _Lazy, over_http: bool, host: str, port: int) -> None:
    """Serve the knowledge base to MCP clients over stdio, or Streamable HTTP with --http (tools:
    search_notes, ask, get_note, related_notes, recent_changes, status; notes as note:// resources)."""
    from pai_kb.mcp_server import HttpEndpoint, run

    with lazy.kb() as kb:
        if not over_http:
            return run(kb)
        from pai_kb.server import listen, serve as run_server

        sock = listen(host, port, kb.config.token)
        click.echo(f"pai-kb MCP on http://{host}:{port}/mcp", err=True)
        run_server(kb, sock, kb.config.token, mcp=HttpEndpoint(kb))


def _serve_in_background(lazy: _Lazy, host: str, port: int) -> None:
    """The API reads the index through its own KnowledgeBase (its own SQLite connection) while the
    watcher writes; the thread dies with the process. The socket is bound here first, so a refused
    bind stops the command with one line instead of a thread dying quietly."""
    import threading

    from pai_kb.kb import KnowledgeBase
    from pai_kb.mcp_server import HttpEndpoint
    from pai_kb.server import listen, serve as run_server

    reader = KnowledgeBase(lazy.config())
    sock = listen(host, port, reader.config.token)
    threading.Thread(target=run_server, args=(reader, sock, reader.config.token, HttpEndpoint(reader)),
                     daemon=True).start()


@contextmanager
def _interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM stop at once (within one model batch), unwinding: a model export child is
    killed, the writer lock released and open transactions rolled back; then one line and exit status 130.
    A sync is crash-safe at any instant, so what was committed stays and the next run completes it. Some
    C extensions turn an interrupt during their import into an ImportError, so after a stop request any
    exception on the way out counts as the stop."""
    import signal

    asked: list[int] = []

    def interrupt(signum: int, _frame: object) -> None:
        asked.append(signum)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except BaseException as exc:
        if not asked and not isinstance(exc, KeyboardInterrupt):
            raise
        click.echo("stopped; what was indexed is kept, and the next `pai-kb index` finishes the rest", err=True)
        sys.exit(130)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _progress(label: str) -> Iterator[Callable[..., None]]:
    """`progress(done, total, unit="files")`: files under `label`, or (unit "seconds") the audio being
    transcribed, under "Transcribing" in minutes of audio done and left. A bar on a terminal, a new one
    when the unit or total changes; without one, a plain line at most every 30 s (nothing on short runs)."""
    def words(done: int, total: int, unit: str) -> tuple[str, str]:
        if unit == "seconds":
            left = max(total - done, 0)
            return "Transcribing", f"{done / 60:.1f} of {total / 60:.1f} min of audio done, {left / 60:.1f} left"
        return label, f"{done} of {total} files"

    if not sys.stderr.isatty():
        last = [time.monotonic()]

        def line(done: int, total: int, unit: str = "files") -> None:
            if time.monotonic() - last[0] >= _PLAIN_PROGRESS_S:
                last[0] = time.monotonic()
                click.echo(": ".join(words(done, total, unit)), err=True)

        yield line
        return
    bar: list = []  # (unit, the click progress bar shown)

    def update(done: int, total: int, unit: str = "files") -> None:
        if bar and (bar[0][0] != unit or bar[0][1].length != total):
            bar.pop()[1].__exit__(None, None, None)
        if not bar:
            audio = unit == "seconds"
            shows = (lambda d: d is not None and words(d, total, unit)[1] or None) if audio else None
            bar.append((unit, click.progressbar(length=total, label=words(0, total, unit)[0], file=sys.stderr,
                                                show_pos=not audio, item_show_func=shows)))
            bar[0][1].__enter__()
        bar[0][1].update(done - bar[0][1].pos, current_item=done)

    try:
        yield update
    finally:
        if bar:
            bar[0][1].__exit__(None, None, None)


def _warn(warnings: list[str]) -> None:
    for line in warnings[:_MAX_WARNINGS]:
        click.echo(f"warning: {render.inert(line)}", err=True)
    if len(warnings) > _MAX_WARNINGS:
        click.echo(f"warning: … and {len(warnings) - _MAX_WARNINGS} more", err=True)
