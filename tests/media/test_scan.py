"""`mmindex.media.scan` on real folders: which files are media, walk order, and every path that cannot be scanned
(broken links, link loops, unreadable folders, links out of the allowed folders) as an error item, never a raise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmindex.media.scan import OUTSIDE, ScanItem, media_kind, scan


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def found(paths, confine_to=None) -> dict[str, str | None]:
    """{path: error} of the scan, in scan order (a dict keeps it)."""
    items = list(scan(paths, confine_to))
    assert len({i.path for i in items}) == len(items), "a path was yielded twice"
    return {i.path: i.error for i in items}


@pytest.mark.parametrize(("name", "kind"), [
    ("a.jpg", "image"), ("A.JPEG", "image"), ("b.Png", "image"), ("c.webp", "image"), ("d.tiff", "image"),
    ("e.gif", "image"), ("f.mp4", "video"), ("g.MKV", "video"), ("h.webm", "video"), ("i.mov", "video"),
    ("notes.txt", None), ("jpg", None), (".jpg", None), ("archive.jpg.gz", None), ("noext", None),
    ("dir.jpg/clip.avi", "video"),
])
def test_media_kind_by_extension(name, kind):
    assert media_kind(name) == kind
    assert media_kind(Path(name)) == kind


def test_walk_picks_media_recursively_in_a_stable_order(tmp_path):
    for rel in ["b.jpg", "a.PNG", "notes.txt", "clip.mp4", "sub/z.jpg", "sub/deeper/y.gif", "sub/readme.md",
                "a-sub/x.webp", ".hidden.jpg", ".cache/thumb.jpg"]:
        touch(tmp_path / rel)
    got = found([tmp_path])
    assert all(err is None for err in got.values())
    # sorted by name within a folder, a folder's files before its subfolders, depth first;
    # hidden files and folders are media like any other (nothing filters them)
    assert [os.path.relpath(p, tmp_path) for p in got] == [
        ".hidden.jpg", "a.PNG", "b.jpg", "clip.mp4",
        ".cache/thumb.jpg", "a-sub/x.webp", "sub/z.jpg", "sub/deeper/y.gif"]
    assert list(found([tmp_path])) == list(got)  # the same order every time


def test_a_file_named_explicitly_is_taken_whatever_its_extension_and_only_once(tmp_path):
    notes, photo = touch(tmp_path / "notes.txt"), touch(tmp_path / "p.jpg")
    got = found([notes, tmp_path, photo, str(photo)])
    assert got == {str(notes): None, str(photo): None}  # not twice, though named twice and found in the folder
    relative = os.path.relpath(photo)
    assert found([relative]) == {str(photo): None}  # paths come back absolute
    assert found([tmp_path, tmp_path]) == {str(photo): None}  # a folder named twice: its files once


def test_missing_paths_and_broken_links_are_error_items(tmp_path):
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "gone.txt")  # not a media name: not reported
    touch(tmp_path / "ok.jpg")
    assert found([tmp_path / "nope", tmp_path / "dangling.jpg", tmp_path / "dangling.txt"]) == {
        str(tmp_path / "nope"): "no such file or folder",
        str(tmp_path / "dangling.jpg"): "broken symbolic link",
        str(tmp_path / "dangling.txt"): "broken symbolic link",  # named explicitly: reported whatever its name
    }
    assert found([tmp_path]) == {str(tmp_path / "dangling.jpg"): "broken symbolic link", str(tmp_path / "ok.jpg"): None}


def test_symbolic_link_loops_end_with_an_error_item(tmp_path):
    touch(tmp_path / "top" / "a.jpg")
    touch(tmp_path / "top" / "sub" / "b.jpg")
    (tmp_path / "top" / "sub" / "up").symlink_to(tmp_path / "top")  # a loop back to the top
    (tmp_path / "top" / "sub" / "self").symlink_to(".")  # a loop onto itself
    got = found([tmp_path / "top"])
    top = tmp_path / "top"
    assert got == {
        str(top / "a.jpg"): None,
        str(top / "sub" / "b.jpg"): None,
        str(top / "sub" / "self"): "symbolic link loop (folder already visited)",
        str(top / "sub" / "up"): "symbolic link loop (folder already visited)",
    }


def test_links_to_folders_and_files_elsewhere_are_followed_without_confinement(tmp_path):
    touch(tmp_path / "elsewhere" / "far.jpg")
    touch(tmp_path / "photos" / "near.jpg")
    (tmp_path / "photos" / "link").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "photos" / "linked.jpg").symlink_to(tmp_path / "elsewhere" / "far.jpg")
    got = found([tmp_path / "photos"])
    assert got == {str(tmp_path / "photos" / p): None for p in ["linked.jpg", "near.jpg", "link/far.jpg"]}


def test_confine_to_refuses_what_lies_outside_the_allowed_folders(tmp_path):
    photos, outside = tmp_path / "photos", tmp_path / "photos2"  # a sibling sharing the prefix is still outside
    touch(outside / "secret.jpg")
    touch(outside / "secret.txt")
    touch(photos / "own.jpg")
    touch(photos / "sub" / "deep.jpg")
    (photos / "out").symlink_to(outside)  # a folder link out
    (photos / "out.jpg").symlink_to(outside / "secret.jpg")  # a media link out
    (photos / "out.txt").symlink_to(outside / "secret.txt")  # not media: skipped silently
    touch(tmp_path / "shared" / "common.jpg")
    (photos / "in").symlink_to(tmp_path / "shared")  # a link into another allowed folder is followed
    got = found([photos], confine_to=[photos, tmp_path / "shared"])
    assert got == {
        str(photos / "out"): OUTSIDE,
        str(photos / "out.jpg"): OUTSIDE,
        str(photos / "own.jpg"): None,
        str(photos / "in" / "common.jpg"): None,
        str(photos / "sub" / "deep.jpg"): None,
    }
    assert found([photos / "in"], confine_to=[photos]) == {str(photos / "in"): OUTSIDE}
    # paths named explicitly are checked too, by their real path; a missing one is only missing
    assert found([outside / "secret.jpg", photos / "out.jpg", photos / "own.jpg", outside / "nope.jpg"],
                 confine_to=[photos]) == {
        str(outside / "secret.jpg"): OUTSIDE, str(photos / "out.jpg"): OUTSIDE, str(photos / "own.jpg"): None,
        str(outside / "nope.jpg"): "no such file or folder"}
    # the allowed folder itself, and several allowed folders
    assert found([photos / "sub"], confine_to=[photos / "sub"]) == {str(photos / "sub" / "deep.jpg"): None}
    assert found([outside / "secret.jpg"], confine_to=[photos, outside]) == {str(outside / "secret.jpg"): None}


def test_names_that_are_not_utf8_come_back_as_the_same_file(tmp_path):
    raw = os.fsencode(tmp_path) + b"/caf\xe9.jpg"  # Latin-1, not valid UTF-8
    with open(raw, "wb") as f:
        f.write(b"x")
    [item] = scan([tmp_path])
    assert item == ScanItem(str(tmp_path / "caf\udce9.jpg"))  # the surrogate escape of the byte 0xe9
    assert os.fsencode(item.path) == raw
    with open(item.path, "rb") as f:  # usable as it is by every os function
        assert f.read() == b"x"


_SCAN_AS_NOBODY = "import json, sys; from mmindex.media.scan import scan; " \
                  "print(json.dumps([[i.path, i.error] for i in scan(sys.argv[1:])]))"


def test_an_unreadable_folder_is_an_error_item_and_the_rest_is_scanned(shared_tmp):
    root = shared_tmp / "scan-unreadable"
    touch(root / "a.jpg")
    touch(root / "locked" / "hidden.jpg")
    touch(root / "z" / "b.jpg")
    for folder in (root, root / "z"):
        folder.chmod(0o755)
    (root / "locked").chmod(0)
    try:
        if os.geteuid() == 0:  # root reads every folder: scan as `nobody` for the permission to bite
            proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                   sys.executable, "-c", _SCAN_AS_NOBODY, str(root)],
                                  capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])
            assert proc.returncode == 0, proc.stderr
            got = dict(json.loads(proc.stdout))
        else:
            got = found([root])
    finally:
        (root / "locked").chmod(0o755)
    assert list(got) == [str(root / "a.jpg"), str(root / "locked"), str(root / "z" / "b.jpg")]
    assert got[str(root / "locked")].startswith("cannot read folder: ")
    assert "ermission denied" in got[str(root / "locked")]
    assert got[str(root / "a.jpg")] is None and got[str(root / "z" / "b.jpg")] is None


def test_a_link_to_a_folder_of_the_same_walk_does_not_hide_it_or_index_it_twice(tmp_path):
    """photos/in -> photos/sub sorts before sub: the real folder is walked under its own name, once."""
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    (photos / "sub" / "a.jpg").write_bytes(b"x")
    (photos / "in").symlink_to(photos / "sub")
    items = list(scan([photos]))
    assert items == [ScanItem(str(photos / "sub" / "a.jpg"))]
