"""Serving the HTTP API and the web UI."""

from __future__ import annotations

import click

from mmindex.cli.common import index_option, main, open_engine


@main.command()
@index_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", envvar="MMINDEX_TOKEN", default=None, show_envvar=True,
              help="Bearer token that adding/removing media needs (without it those endpoints are off).")
@click.option("--private", is_flag=True, help="Reading (search, thumbnails, media) needs the token too.")
@click.option("--media-root", "media_roots", multiple=True, type=click.Path(file_okay=False),
              help="Folder media may be served and added from (repeatable; default: the indexed media's folders).")
@click.option("--max-upload-mb", default=10, show_default=True, type=click.IntRange(1, 1024),
              help="Largest image accepted as an uploaded search example.")
@click.option("--threads", default=None, type=click.IntRange(1, 256),
              help="Requests each process works on at once (default: the number of CPUs); the others queue.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes sharing the port (each maps the index; /api/metrics counts its own requests).")
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="Log every request.")
def serve(index, host, port, token, private, media_roots, max_upload_mb, threads, workers, access_log) -> None:
    """Serve the HTTP API and the web UI (http://HOST:PORT/, API docs at /docs)."""
    import dataclasses
    import json
    import os

    import uvicorn

    from mmindex.config import ServiceConfig  # deferred: `mmindex --help` stays fast
    from mmindex.service import create_app  # deferred: `mmindex --help` stays fast

    if private and not token:
        raise click.UsageError("--private needs --token (or $MMINDEX_TOKEN)")
    config = ServiceConfig(token=token or None, public_read=not private, media_roots=tuple(media_roots),
                           max_upload_bytes=max_upload_mb * 1024 * 1024,
                           **({"threads": threads} if threads else {}))
    app = create_app(open_engine(index), config)  # checks the index before any worker starts
    index_dir = app.state.service.engine.index_dir
    click.echo(f"serving {index_dir} on http://{host}:{port}/ (API docs: /docs)")
    options = dict(host=host, port=port, server_header=False, log_level="info", access_log=access_log)
    if workers == 1:
        uvicorn.run(app, **options)
        return
    # Worker processes build their own app from the environment (the token travels as $MMINDEX_TOKEN,
    # as a user may give it, never on a command line).
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k != "token"}
    os.environ["MMINDEX_SERVE"] = json.dumps({"index": str(index_dir), "config": settings})
    if token:
        os.environ["MMINDEX_TOKEN"] = token
    uvicorn.run("mmindex.service.app:app_from_environment", factory=True, workers=workers, **options)
