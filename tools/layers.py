"""Draw mmindex's layers and the imports between them: docs/img/layers.png (`make docs`).

The layers are read from the import-linter contract in pyproject.toml (the one `make lint` checks) and
the imports from the code itself, with grimp (import-linter's own graph library), so the picture cannot
drift from either. Each row is a layer, top to bottom; an arrow is "imports", and every arrow points down.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import grimp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def layers() -> list[list[str]]:
    """The contract's layers, top first, each a list of its modules (without the `mmindex.` prefix)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [[m.strip().removeprefix("mmindex.") for m in layer.replace(":", "|").split("|")]
            for layer in contract["layers"]]


def imports(names: set[str]) -> set[tuple[str, str]]:
    """(importer, imported) between the named top-level modules, from the code."""
    graph = grimp.build_graph("mmindex")
    out = set()
    for module in graph.modules:
        a = module.split(".")[1] if "." in module else None
        for imported in graph.find_modules_directly_imported_by(module):
            b = imported.split(".")[1] if imported.count(".") >= 1 else None
            if a in names and b in names and a != b:
                out.add((a, b))
    return out


def draw(out: Path) -> None:
    rows = layers()
    where = {}
    for y, row in enumerate(rows):
        for x, name in enumerate(row):
            where[name] = ((x + 1) / (len(row) + 1), 1 - (y + 0.5) / len(rows))
    fig, ax = plt.subplots(figsize=(10, 11))
    for a, b in sorted(imports(set(where))):
        (x0, y0), (x1, y1) = where[a], where[b]
        ax.annotate("", xy=(x1, y1 + 0.012), xytext=(x0, y0 - 0.012),
                    arrowprops={"arrowstyle": "->", "color": "#9aa5b1", "lw": 0.7, "shrinkA": 6, "shrinkB": 6})
    for name, (x, y) in where.items():
        label = name if (ROOT / "mmindex" / name).is_dir() is False else f"{name}/"
        ax.text(x, y, label, ha="center", va="center", fontsize=11, family="monospace",
                bbox={"boxstyle": "round,pad=0.35", "fc": "#e8f0fe", "ec": "#3b6fd8"})
    ax.set_axis_off()
    ax.set_title("mmindex: layers (top to bottom) and the imports between them", fontsize=12)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "layers.png")
    draw(parser.parse_args().out)
