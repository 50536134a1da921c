"""Results in notebooks: a grid of thumbnails with scores and times (`Results._repr_html_`, which Jupyter calls),
and a table with one row per hit (`Results.to_arrow`, `Results.to_pandas`).

The grid inlines each thumbnail as a small base64 JPEG, so that a saved notebook shows it anywhere; every text
(file names, criteria, messages) is HTML-escaped, since file names are the user's and may hold markup.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mmindex.errors import MediaError, MmindexError
from mmindex.media.thumbnails import thumbnail_jpeg

if TYPE_CHECKING:
    import pyarrow as pa

    from mmindex.search.hits import Hit

THUMBNAIL_SIZE = 128  # pixels, longest side: about 4-6 KB of JPEG a hit
MAX_THUMBNAILS = 60  # a longer result shows its first hits as a grid and says how many more there are


def results_html(hits: Sequence[Hit], explanation: dict | None = None, message: str | None = None,
                 size: int = THUMBNAIL_SIZE, limit: int = MAX_THUMBNAILS) -> str:
    """The grid: one cell per hit (thumbnail, rank, score, segment id, time span of a video shot, file name)."""
    parts = ['<div class="mmindex-results">']
    if message:
        parts.append(f"<p><b>no hits:</b> {html.escape(message)}</p>")
    criteria = (explanation or {}).get("criteria", [])
    if criteria:
        fused = html.escape(str((explanation or {}).get("fusion", "")))
        labels = ", ".join(f"{html.escape(str(c.get('label', '')))} (weight {c.get('weight', 1):g})" for c in criteria)
        parts.append(f"<p>{labels}{f'; fused by {fused}' if fused and len(criteria) > 1 else ''}</p>")
    parts.append(f'<div style="display:grid;grid-template-columns:repeat(auto-fill,minmax({size + 16}px,1fr));'
                 'gap:8px">')
    parts += [_cell(i, h, size) for i, h in enumerate(hits[:limit], 1)]
    parts.append("</div>")
    if len(hits) > limit:
        parts.append(f"<p>... and {len(hits) - limit} more hits (<code>.to_pandas()</code> lists them all)</p>")
    if not hits and not message:
        parts.append("<p>no hits</p>")
    parts.append("</div>")
    return "".join(parts)


def _cell(rank: int, h: Hit, size: int) -> str:
    when = "" if h.start is None else f"<br>{h.start:.2f}–{h.end if h.end is not None else h.start:.2f} s"
    name = html.escape(os.path.basename(h.path) or h.path)
    return (f'<div style="text-align:center;font-size:12px" title="{html.escape(h.path, quote=True)}">'
            f"{_image(h, size)}<br><b>{rank}.</b> {h.score:.4f} <small>#{h.segment_id}</small>{when}"
            f'<br><span style="word-break:break-all">{name}</span></div>')


def _image(h: Hit, size: int) -> str:
    """The thumbnail as an inline JPEG, or a grey box saying why there is none (a file moved or unreadable)."""
    try:
        data = thumbnail_jpeg(h.path, h.kind, h.start, h.end, size, quality=70)
    except (MediaError, OSError) as exc:
        return (f'<div style="width:{size}px;height:{size}px;margin:auto;background:#ddd;font-size:11px">'
                f"no thumbnail: {html.escape(str(exc))}</div>")
    return (f'<img src="data:image/jpeg;base64,{base64.b64encode(data).decode("ascii")}" '
            f'style="max-width:{size}px;max-height:{size}px" alt="{html.escape(h.path, quote=True)}">')


def hits_table(hits: Sequence[Hit]) -> pa.Table:
    """One row per hit, best first: rank, segment_id, path, kind, start, end, score, media_id, and with `explain`
    each criterion's raw score (`why:<criterion>`) and its share of the fused score (`share:<criterion>`); a
    temporal query's chains (`then`, a list of {segment_id, start, end, score}), `group="video"`'s `matches`."""
    try:
        import pyarrow as pa
    except ImportError:
        raise MmindexError("tables of hits need pyarrow: pip install 'mmindex[data]'") from None
    columns = {"rank": pa.array(range(1, len(hits) + 1), pa.int32()),
               "segment_id": pa.array([h.segment_id for h in hits], pa.int64()),
               "path": pa.array([h.path for h in hits], pa.string()),
               "kind": pa.array([h.kind for h in hits], pa.string()),
               "start": pa.array([h.start for h in hits], pa.float64()),
               "end": pa.array([h.end for h in hits], pa.float64()),
               "score": pa.array([h.score for h in hits], pa.float64()),
               "media_id": pa.array([h.media_id for h in hits], pa.int64())}
    for field, prefix in (("why", "why:"), ("parts", "share:")):
        keys = list(dict.fromkeys(k for h in hits for k in (getattr(h, field) or {})))
        for k in keys:
            columns[prefix + k] = pa.array([(getattr(h, field) or {}).get(k) for h in hits], pa.float64())
    if any(getattr(h, "then", None) for h in hits):  # a temporal query's chains (search/temporal.py)
        step = pa.struct([("segment_id", pa.int64()), ("start", pa.float64()), ("end", pa.float64()),
                          ("score", pa.float64())])
        columns["then"] = pa.array([h.then for h in hits], pa.list_(step))
    if any(getattr(h, "matches", None) is not None for h in hits):  # group="video"
        columns["matches"] = pa.array([h.matches for h in hits], pa.int64())
    return pa.table(columns)
