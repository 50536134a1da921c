"""The docs are tested against the code (after datasette's tests/test_docs.py): every CLI command and option is
in the README's CLI reference, every HTTP endpoint in docs/service.md, every package in docs/architecture.md's
table. The parsers are tested on small strings too, so that a check that could never fail is caught."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mmindex"


# --- parsing the docs -----------------------------------------------------------------------------------------

def section(markdown: str, heading: str) -> str:
    """The text under `## heading`, up to the next heading of the same level."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"no section '## {heading}'"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    """The cells of every markdown table row in `text`, without header separators (`\\|` stays in its cell)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.fullmatch(r"[|\s:-]+", line):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows[1:] if rows else rows  # the first row is the header


def names(text: str, word: str) -> bool:
    """Whether `word` (a command or an option) occurs in `text` as a whole word: `--val` is not `--val-fraction`,
    `mmindex evaluate` is not `mmindex evaluate-ilsvrc`."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def linked_docs(row: str) -> list[Path]:
    return [ROOT / "docs" / name for name in re.findall(r"\]\((?:docs/)?([\w-]+\.md)\)", row)]


# --- the CLI reference ---------------------------------------------------------------------------------------

def cli_commands() -> dict[str, list[list[str]]]:
    """Every command of the `mmindex` group, sub-groups walked, as 'models list' -> the names of each option
    (its long names, or its short one when it has no long one; hidden options and --help left out)."""
    from mmindex.cli import main

    out: dict[str, list[list[str]]] = {}

    def walk(group: click.Group, path: list[str]) -> None:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                walk(command, [*path, name])
                continue
            ctx = click.Context(command)
            help_option = command.get_help_option(ctx)
            out[" ".join([*path, name])] = [option_names(p) for p in command.get_params(ctx)
                                            if isinstance(p, click.Option) and not p.hidden and p is not help_option]

    walk(main, [])
    return out


def option_names(option: click.Option) -> list[str]:
    every = [*option.opts, *option.secondary_opts]
    return [o for o in every if o.startswith("--")] or every


def undocumented(reference: str, commands: dict[str, list[list[str]]]) -> list[str]:
    """What `reference` (the README section) leaves out: a command no row's first cell names, or an option named
    neither in one of its command's rows, nor in a docs/*.md page such a row links to, nor in the text before the
    table (which describes the options that many commands share, such as `--index`)."""
    rows = table_rows(reference)
    shared = reference.split("\n|", 1)[0]
    missing = []
    for command, options in sorted(commands.items()):
        mine = [" ".join(cells) for cells in rows if names(cells[0], f"mmindex {command}")]
        if not mine:
            missing.append(f"mmindex {command}")
            continue
        pages = "\n".join(p.read_text() for row in mine for p in linked_docs(row) if p.is_file())
        for option in options:
            if not any(names(text, o) for text in [*mine, pages, shared] for o in option):
                missing.append(f"mmindex {command} {option[0]}")
    return missing


def test_every_cli_command_and_option_is_in_the_readme():
    reference = section((ROOT / "README.md").read_text(), "CLI reference")
    commands = cli_commands()
    assert {"add", "search", "train", "models list", "saved run", "text train-word2vec"} <= commands.keys()
    assert undocumented(reference, commands) == []


def test_the_root_options_are_in_the_readme():
    from mmindex.cli import main

    reference = section((ROOT / "README.md").read_text(), "CLI reference")
    for param in main.params:
        assert any(names(reference, o) for o in option_names(param)), param.opts


def test_the_cli_check_finds_what_is_missing():
    reference = ("Every command that has an index takes `--index DIR`.\n\n| command | what |\n|---|---|\n"
                 "| `mmindex add PATH [--batch-size 32] [--json]` | Add; `--val` (see [x](docs/learning.md)). |\n"
                 "| `mmindex evaluate-ilsvrc DIR` | Also `mmindex evaluate --qrels`. |\n")
    commands = {"add": [["--batch-size"], ["--json"], ["--quiet"]], "evaluate": [["--qrels"]],
                "evaluate-ilsvrc": [["--json"]], "train": [["--val-fraction"]]}
    assert undocumented(reference, commands) == ["mmindex add --quiet", "mmindex evaluate",
                                                 "mmindex evaluate-ilsvrc --json", "mmindex train"]
    # an option named only in a linked doc counts (docs/learning.md documents --patience)
    assert undocumented(reference, {"add": [["--patience"]]}) == []
    assert undocumented(reference, {"add": [["--no-such-option"]]}) == ["mmindex add --no-such-option"]
    assert undocumented(reference, {"add": [["--index"]]}) == []  # named in the text before the table


def test_the_cli_check_catches_an_option_taken_out_of_the_readme():
    reference = section((ROOT / "README.md").read_text(), "CLI reference")
    assert names(reference, "--frame-step")
    scratch = reference.replace("[--frame-step N] ", "")
    assert undocumented(scratch, cli_commands()) == ["mmindex add --frame-step"]


# --- the HTTP API ----------------------------------------------------------------------------------------------

def app_endpoints(app) -> set[str]:
    """'METHOD /path' of every API route, the routers included (walked by hand: recent FastAPI versions keep an
    included router as one entry of `app.routes`); FastAPI's own /docs, /redoc, /openapi.json and static files
    are plain routes and mounts, not API routes."""
    from fastapi.routing import APIRoute

    def walk(routes, prefix: str):
        for route in routes:
            if isinstance(route, APIRoute):
                yield from (f"{method} {prefix}{route.path}" for method in route.methods)
            elif hasattr(route, "original_router"):
                yield from walk(route.original_router.routes, prefix + route.include_context.prefix)

    return {endpoint_key(e) for e in walk(app.routes, "")}


def endpoint_key(endpoint: str) -> str:
    """`GET /api/segments/{segment_id}` and `GET /api/segments/{id}` are one endpoint; a query string is dropped."""
    return re.sub(r"\{[^}]*\}", "{}", endpoint.split("?")[0])


def doc_endpoints(markdown: str) -> set[str]:
    """The endpoints the first column of the '## Endpoints' table names, as `METHOD /path` code spans."""
    out = set()
    for cells in table_rows(section(markdown, "Endpoints")):
        out |= {endpoint_key(e) for e in re.findall(r"`((?:GET|HEAD|POST|PUT|PATCH|DELETE) /[^`\s]*)`", cells[0])}
    return out


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from mmindex.service import create_app
    from tests.service.conftest import make_store, write_jpeg

    tmp = tmp_path_factory.mktemp("docs")
    return create_app(make_store(tmp / "index", [write_jpeg(tmp / "a.jpg")]))


def test_every_endpoint_is_in_the_service_doc(app):
    endpoints = app_endpoints(app)
    # the walk misses nothing the OpenAPI schema lists
    schema = {endpoint_key(f"{m.upper()} {path}") for path, ops in app.openapi()["paths"].items() for m in ops}
    assert schema <= endpoints and "GET /api/search" in schema
    documented = doc_endpoints((ROOT / "docs" / "service.md").read_text())
    assert sorted(endpoints - documented) == []
    assert sorted(documented - endpoints) == []  # nor an endpoint that is gone


def test_the_endpoint_parser():
    doc = ("## Endpoints\n\n| endpoint | what |\n|---|---|\n| `GET /api/x/{id}`, `HEAD /api/x/{id}` | `POST /no` |\n"
           "| `DELETE /api/media?path=...` | y |\n\n## Next\n| `GET /later` | z |\n")
    assert doc_endpoints(doc) == {"GET /api/x/{}", "HEAD /api/x/{}", "DELETE /api/media"}


# --- the package table -----------------------------------------------------------------------------------------

def table_entries(markdown: str) -> set[str]:
    """The code spans of the first column of the '## Packages' table: `media/`, `media/scan.py`, `config.py`."""
    return {e for cells in table_rows(section(markdown, "Packages")) for e in re.findall(r"`([^`]+)`", cells[0])}


def package_table_errors(entries: set[str], root: Path) -> list[str]:
    """A package (a folder with __init__.py) or top-level module that no entry names, and an entry that names
    nothing. A package is named by `pkg/` or by one of its modules (`pkg/mod.py`)."""
    packages = {str(p.parent.relative_to(root)) for p in root.rglob("__init__.py") if p.parent != root}
    modules = {p.name for p in root.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    named = {e.rstrip("/") for e in entries if e.endswith("/")} | {e.rsplit("/", 1)[0] for e in entries
                                                                     if "/" in e.rstrip("/")}
    errors = [f"package {p}/ is not in the table" for p in sorted(packages - named)]
    errors += [f"module {m} is not in the table" for m in sorted(modules - entries)]
    errors += [f"{e} does not exist" for e in sorted(entries)
               if not ((root / e / "__init__.py").is_file() if e.endswith("/") else (root / e).is_file())]
    return errors


def test_the_architecture_table_names_exactly_the_packages():
    entries = table_entries((ROOT / "docs" / "architecture.md").read_text())
    assert {"cli/", "config.py"} <= entries
    assert package_table_errors(entries, PACKAGE) == []


def test_the_package_check_finds_what_is_missing(tmp_path):
    for path in ("__init__.py", "config.py", "a/__init__.py", "a/x.py", "b/__init__.py", "b/c/__init__.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
    assert package_table_errors({"a/x.py", "b/", "b/c/", "config.py"}, tmp_path) == []
    assert package_table_errors({"a/x.py", "b/", "gone/", "old.py"}, tmp_path) == [
        "package b/c/ is not in the table", "module config.py is not in the table", "gone/ does not exist",
        "old.py does not exist"]
    table = "## Packages\n\n| module | owns |\n|---|---|\n| `a/x.py`, `b/` | things |\n| `c.py` | `not/` |\n"
    assert table_entries(table) == {"a/x.py", "b/", "c.py"}
