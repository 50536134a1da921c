"""Shell completion and man pages, produced by the installed `mmindex` entry point (the script pip writes from
[project.scripts]) as a user's shell runs it: README's "Shell completion and man pages" shows these commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCRIPT = shutil.which("mmindex", path=str(BIN))

pytestmark = pytest.mark.skipif(SCRIPT is None, reason="the mmindex entry point is not installed (pip install -e .)")
# The tree under test first on the path, as the rest of the suite runs it (the script may point at another checkout).
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
       "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}


def entry_point(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, env={**ENV, **env}, timeout=120)


@pytest.mark.parametrize("shell, expected", [
    ("bash", "complete -o nosort -F _mmindex_completion mmindex"),
    ("zsh", "#compdef mmindex"),
    ("fish", "complete --no-files --command mmindex"),
])
def test_each_shell_gets_its_completion_script(shell, expected):
    proc = entry_point(_MMINDEX_COMPLETE=f"{shell}_source")
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout
    assert "_MMINDEX_COMPLETE" in proc.stdout  # the script calls the entry point back for the words


def test_the_bash_script_completes_commands_and_options_in_bash():
    """Sourced in a real bash, the script completes `mmindex se<TAB>` and `mmindex search --ex<TAB>` (bash calls the
    function with the command's name, and empties COMPREPLY, before each completion)."""
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    script = """eval "$(_MMINDEX_COMPLETE=bash_source mmindex)"
        COMP_WORDS=(mmindex se); COMP_CWORD=1; _mmindex_completion mmindex; echo "commands: ${COMPREPLY[*]}"
        COMPREPLY=(); COMP_WORDS=(mmindex search --ex); COMP_CWORD=2; _mmindex_completion mmindex
        echo "options: ${COMPREPLY[*]}"
    """
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    assert set(lines["commands"].split()) == {"search", "serve"}
    assert lines["options"].split() == ["--explain"]


def test_make_man_writes_a_page_per_command(tmp_path):
    """`make man`'s command: click-man loads the entry point and writes one page per command, which man renders."""
    click_man = shutil.which("click-man", path=str(BIN))
    if click_man is None:
        pytest.skip("click-man is not installed (the docs extra)")
    proc = subprocess.run([click_man, "--target", str(tmp_path), "mmindex"], capture_output=True, text=True,
                          env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr
    pages = {p.name for p in tmp_path.glob("*.1")}
    assert {"mmindex.1", "mmindex-add.1", "mmindex-search.1", "mmindex-serve.1", "mmindex-models-list.1"} <= pages
    add = (tmp_path / "mmindex-add.1").read_text()
    assert add.startswith('.TH "MMINDEX ADD" "1"') and r"\-\-batch\-size" in add
    if shutil.which("groff"):
        text = subprocess.run(["groff", "-man", "-Tutf8", str(tmp_path / "mmindex-search.1")], capture_output=True,
                              text=True, timeout=60).stdout
        assert "--concept" in text.replace("\u2010", "-").replace("\u2212", "-")
