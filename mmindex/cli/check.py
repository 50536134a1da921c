"""Keeping an index whole: check and repair."""

from __future__ import annotations

import json
import sys

import click

from mmindex.cli.common import index_option, main, open_engine


@main.command()
@index_option
@click.option("--json", "as_json", is_flag=True, help="One object {damaged, problems: [...]}.")
def check(index, as_json) -> None:
    """Verify the index: database, batch files (size and SHA-256), vector index, detectors, orphans.

    One line per problem, with what it means and the command that fixes it; exit status 1 on damage.
    """
    problems = open_engine(index).check()
    damaged = any(p.severity == "damage" for p in problems)
    if as_json:
        click.echo(json.dumps({"damaged": damaged, "problems": [p.to_dict() for p in problems]}))
    else:
        for p in problems:
            click.echo(p.line())
        click.echo("damaged" if damaged else "ok" + (f" ({len(problems)} notes)" if problems else ""))
    if damaged:
        sys.exit(1)


@main.command()
@index_option
@click.option("--json", "as_json", is_flag=True, help="One object {done: [...], problems: [...]}.")
def repair(index, as_json) -> None:
    """Mend the index: rebuild what is derived, quarantine damaged files (never deleted), forget their media
    so that the next `add` indexes them again. Safe to interrupt and to run again."""
    engine = open_engine(index)
    done = engine.repair()
    left = [p for p in engine.check() if p.severity == "damage"] if engine.index_dir.joinpath("index.sqlite").exists() \
        else []
    if as_json:
        click.echo(json.dumps({"done": done, "problems": [p.to_dict() for p in left]}))
    else:
        for line in done:
            click.echo(line)
        for p in left:
            click.echo(p.line())
        click.echo("nothing to repair" if not done and not left else "repaired" if not left else "still damaged")
    if left:
        sys.exit(1)
