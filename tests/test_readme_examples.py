"""The README's Python examples run unchanged: each ```python block is executed as it is written, in a
folder of its own, with HOME pointing at a home whose ~/Pictures holds the sample photos."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_python_examples():
    assert BLOCKS, "README.md shows the Python API"


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_a_readme_python_example_runs_unchanged(code, tmp_path, sample_photos):
    home = tmp_path / "home"
    shutil.copytree(sample_photos, home / "Pictures")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(README.parent)}
    env.pop("MMINDEX_INDEX", None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    if "engine.search" in code and "print(hit.score, hit.path)" in code:
        lines = proc.stdout.strip().splitlines()
        assert lines and all(str(home / "Pictures") in line for line in lines), proc.stdout
        assert "chelsea" in lines[0], "the tabby cat photo comes first for 'tabby'"
