"""Extraction: media files → decoded keyframes (`reader`) → concept scores and embeddings (`mapper`).

The reader and mapper stages of `mmindex add`, shared by `classify` and the Ray executor; `index.ingest` adds
the writer.
"""
