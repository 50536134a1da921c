"""The HTTP API and web UI: `create_app(engine_or_index, ServiceConfig)`, run by `mmindex serve`."""

from __future__ import annotations

from mmindex.service.app import create_app

__all__ = ["create_app"]
