"""`make docs` builds the HTML documentation offline, strict: the pages of docs/ and the API reference that
mkdocstrings renders from the docstrings (mkdocs.yml). A broken link or a reference to no object fails it."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mkdocstrings") is None,
                                reason="mkdocs is not installed (the docs extra: pip install -e '.[docs]')")


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], capture_output=True, text=True, cwd=ROOT, timeout=300)


def copy_of_the_docs(tmp_path: Path) -> Path:
    """mkdocs.yml and docs/ copied into tmp_path, the code still read from the tree: a config to break."""
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    config = (ROOT / "mkdocs.yml").read_text().replace("paths: [.]", f"paths: [{ROOT}]")
    (tmp_path / "mkdocs.yml").write_text(config)
    return tmp_path / "mkdocs.yml"


def test_the_docs_build_with_the_api_reference(tmp_path):
    proc = mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pages = {p.name for p in (tmp_path / "site").glob("*.html")}
    assert {p.stem + ".html" for p in (ROOT / "docs").glob("*.md")} <= pages  # every page of docs/
    for page in (tmp_path / "site").glob("*.html"):  # offline: no script or stylesheet from the network
        assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', page.read_text()), page.name
    api = (tmp_path / "site" / "api.html").read_text()
    # the facade's methods with their docstrings, rendered from the code
    from mmindex.engine import Engine

    for method in ("add", "search", "teach"):
        assert f'id="mmindex.engine.Engine.{method}"' in api
        first_line = getattr(Engine, method).__doc__.strip().splitlines()[0]
        assert first_line.split("`")[0].strip()[:30] in api


@pytest.mark.parametrize("breakage", ["::: mmindex.engine.NoSuchThing", "[a link](no-such-page.md)"])
def test_a_broken_reference_fails_the_build(tmp_path, breakage):
    config = copy_of_the_docs(tmp_path)
    with open(tmp_path / "docs" / "api.md", "a") as f:
        f.write(f"\n\n{breakage}\n")
    proc = mkdocs_build(config, tmp_path / "site")
    assert proc.returncode != 0
