"""Issue 22 (notebooks): search results render in Jupyter as a grid of inline JPEG thumbnails with scores, with
every text escaped, and convert to Arrow and pandas with one row per hit. On the sample photos' index."""

from __future__ import annotations

import base64
import io
import re
import shutil

from PIL import Image

from mmindex import Engine
from mmindex.search.hits import Hit, Results


def test_a_search_renders_as_a_grid_of_thumbnails(photo_index):
    hits = Engine(photo_index).search(concepts=["espresso"], k=3, remember=False)
    page = hits._repr_html_()
    images = re.findall(r'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3
    first = Image.open(io.BytesIO(base64.b64decode(images[0])))
    assert first.format == "JPEG" and max(first.size) == 128  # small: the photo scaled to 128 pixels
    assert f"{hits[0].score:.4f}" in page and "coffee.jpg" in page and "#" + str(hits[0].segment_id) in page
    assert page.index("coffee.jpg") < page.index(hits[1].path.rsplit("/", 1)[1])  # best first


def test_file_names_are_escaped_and_a_missing_file_says_so(sample_photos, tmp_path):
    tricky = tmp_path / '<img src=x onerror="alert(1)">&.jpg'
    shutil.copy(sample_photos / "chelsea.jpg", tricky)
    results = Results([Hit(1, str(tricky), None, None, 0.9), Hit(2, str(tmp_path / "gone.jpg"), None, None, 0.5)],
                      message=None)
    page = results._repr_html_()
    assert "<img src=x" not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;.jpg" in page
    assert page.count("data:image/jpeg;base64,") == 1 and "no thumbnail" in page
    empty = Results([], message='no concept matches "<b>"')._repr_html_()
    assert "&lt;b&gt;" in empty and "<b>\"" not in empty


def test_results_to_arrow_and_pandas_one_row_per_hit(photo_index):
    hits = Engine(photo_index).search(concepts=["espresso", "tabby"], k=4, explain=True, remember=False)
    frame = hits.to_pandas()
    assert len(frame) == 4 and list(frame["rank"]) == [1, 2, 3, 4]
    assert list(frame["segment_id"]) == [h.segment_id for h in hits]
    assert list(frame["path"]) == [h.path for h in hits] and list(frame["score"]) == [h.score for h in hits]
    assert frame["start"].isna().all()  # photos
    for criterion in hits[0].why:
        assert list(frame[f"why:{criterion}"]) == [h.why[criterion] for h in hits]
    table = hits.to_arrow()
    assert table.num_rows == 4 and table.schema.field("segment_id").type.bit_width == 64
