"""Property-based API tests: schemathesis generates requests from /openapi.json (bounded in time).

Every generated request must get a documented status with a body matching the schema; a 500 fails.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from mmindex.config import ServiceConfig  # noqa: E402
from mmindex.service import create_app  # noqa: E402
from tests.service.conftest import make_store, write_jpeg  # noqa: E402


def _app():
    """An index built at import (schemathesis needs the schema when tests are collected): five tiny JPEGs."""
    tmp = Path(tempfile.mkdtemp(prefix="mmindex-schema-"))
    files = [write_jpeg(tmp / "media" / f"{i}.jpg", (i * 40, 90, 200 - i * 30)) for i in range(5)]
    app = create_app(make_store(tmp / "index", files), ServiceConfig(token="schema-token"))
    if app.state.service.features.text:  # build the concept bank once (cached per session), not in a timed call
        app.state.service.engine.search(text="warm up", **app.state.service._search_options)
    return app


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_api_conforms_to_its_schema(case):
    # A concept expression has a grammar and a vocabulary that JSON Schema cannot state: a generated
    # string such as "0" is schema-valid and still rightly a 400 (unknown concept). Every other check runs,
    # not_a_server_error included.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
