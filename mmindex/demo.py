"""`make demo`: index the bundled sample photos and answer sample queries, through the real CLI.

Run with `python -m mmindex.demo [OUT_DIR]` (default ./out/demo).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from PIL import Image

from mmindex.cli import main as cli
from mmindex.samples import write_sample_photos, write_sample_videos


def run(*args: str) -> None:
    print(f"\n$ mmindex {shlex.join(args)}", flush=True)
    try:
        cli.main(list(args), prog_name="mmindex", standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise


def main(out: str = "out/demo") -> None:
    out_dir = Path(out)
    media = out_dir / "media"
    index = str(out_dir / "index")
    photos = write_sample_photos(media / "photos")
    write_sample_videos(media / "videos")
    # A re-scaled, cropped copy of one photo, kept outside the index, to search by example.
    query_img = out_dir / "query-chelsea-crop.jpg"
    with Image.open(photos[0]) as im:
        im.crop((60, 20, 400, 280)).resize((240, 184)).save(query_img, quality=85)
    print(f"sample media in {media}; index in {index}")

    run("add", str(media), "--index", index)
    run("info", "--index", index)
    run("search", "--index", index, "--concept", "espresso", "-k", "3")
    run("search", "--index", index, "--concept", "Egyptian cat", "-k", "3")
    run("search", "--index", index, "--concept", "cat AND NOT dog", "-k", "3")
    run("search", "--index", index, "--concept", "flower", "-k", "3")
    run("search", "--index", index, "--like", str(query_img), "-k", "3")
    run("search", "--index", index, "--concept", "mountain bike", "-k", "3")
    run("search", "--index", index, "--concept", "cat^2", "--like", str(query_img), "-k", "3", "--explain")
    run("search", "--index", index, "--text", "a cup of coffee", "-k", "3")
    run("concepts", "tabby")
    print(f"\nTo search in a browser, run:  mmindex serve --index {index}\n"
          "then open http://127.0.0.1:8000 (API docs at http://127.0.0.1:8000/docs).")


if __name__ == "__main__":
    main(*sys.argv[1:2])
