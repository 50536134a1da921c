"""Every module mmindex imports is a declared dependency and every declared one is used (deptry, as
`make lint` runs it), and the check does catch an undeclared import."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("deptry") is None,
                                reason="deptry is not installed (pip install -e '.[dev]')")


def deptry(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deptry", "mmindex", "--no-ansi", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_imports_match_the_declared_dependencies():
    proc = deptry()
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("package, module", [("pydantic", "pydantic"), ("scipy", "scipy"),
                                             ("pytrec-eval-terrier", "pytrec_eval")])
def test_an_undeclared_import_fails_the_check(tmp_path, package, module):
    text = (ROOT / "pyproject.toml").read_text()
    config = tmp_path / "pyproject.toml"
    config.write_text(re.sub(rf'\n\s*"{re.escape(package)}[<>=!~][^"\n]*",', "", text, count=1))
    assert config.read_text() != text, f"{package} is not declared in pyproject.toml"
    proc = deptry("--config", str(config))
    assert proc.returncode != 0
    assert f"'{module}' imported but" in proc.stdout + proc.stderr
