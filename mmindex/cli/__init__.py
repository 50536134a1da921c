"""The `mmindex` command line. It parses, calls the Engine, and formats; nothing else.

`common` holds the `main` group; each module adds one family of commands to it.
"""

from mmindex.cli import check, data, index, learn, search, serve, teach, text, zoo  # noqa: F401  (registers the commands)
from mmindex.cli.common import main

__all__ = ["main"]
