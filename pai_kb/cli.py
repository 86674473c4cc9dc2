"""The command line: parse arguments, make one library call, print. No logic lives here."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from pai_kb import render
from pai_kb.config import load_config
from pai_kb.errors import PaiKbError
from pai_kb.kb import KnowledgeBase
from pai_kb.search import MODES

_MAX_WARNINGS = 20


class _Group(click.Group):
    """Every library error becomes one line on stderr and exit 1, in one place."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except PaiKbError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group)
@click.option("--vault", type=click.Path(path_type=Path), help="Obsidian vault folder [./vault].")
@click.option("--inbox", type=click.Path(path_type=Path), help="Drop folder for clips and transcripts [./ingest].")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index folder [./index].")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="pai-kb.toml to use.")
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

    @contextmanager
    def kb(self) -> Iterator[KnowledgeBase]:
        kb = KnowledgeBase(load_config(self.flags))
        try:
            yield kb
        finally:
            kb.close()


@main.command()
@click.option("--rebuild", is_flag=True, help="Drop the index and build it again (after changing model or chunking).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def index(lazy: _Lazy, rebuild: bool, as_json: bool) -> None:
    """Bring the index up to date with the vault and the inbox."""
    with lazy.kb() as kb, _progress("Indexing") as progress:
        report = kb.index(rebuild=rebuild, progress=progress)
    _warn(report.warnings)
    click.echo(render.report_json(report) if as_json else render.report_text(report))


@main.command()
@click.argument("query")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 200), help="Results to return.")
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True)
@click.option("--per-note", type=click.IntRange(1), help="At most this many passages per note.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def search(lazy: _Lazy, query: str, k: int, mode: str, per_note: int | None, as_json: bool) -> None:
    """Find the passages that answer QUERY."""
    if not query.strip():
        raise click.UsageError("QUERY is empty; say what to look for")
    with lazy.kb() as kb:
        hits = kb.search(query, k=k, mode=mode, per_note=per_note)
    if as_json:
        click.echo(render.search_json(query, hits, mode=mode, k=k, per_note=per_note))
    else:
        click.echo(render.search_text(hits))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def status(lazy: _Lazy, as_json: bool) -> None:
    """What the index holds and what on disk it does not reflect yet."""
    import json

    with lazy.kb() as kb:
        st = kb.status()
    click.echo(json.dumps(render.status_dict(st)) if as_json else render.status_text(st))


@contextmanager
def _progress(label: str) -> Iterator[object]:
    """A bar on a terminal, nothing when stderr is a pipe or a file."""
    if not sys.stderr.isatty():
        yield None
        return
    bar: list = []

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(click.progressbar(length=total, label=label, file=sys.stderr))
            bar[0].__enter__()
        bar[0].update(done - bar[0].pos)

    try:
        yield update
    finally:
        if bar:
            bar[0].__exit__(None, None, None)


def _warn(warnings: list[str]) -> None:
    for line in warnings[:_MAX_WARNINGS]:
        click.echo(f"warning: {line}", err=True)
    if len(warnings) > _MAX_WARNINGS:
        click.echo(f"warning: … and {len(warnings) - _MAX_WARNINGS} more", err=True)
