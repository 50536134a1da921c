"""Generated from the text-encoder registry: every name resolves, documents its spec, and the cheap ones encode."""

from __future__ import annotations

import numpy as np
import pytest

from mmindex.errors import ModelError
from mmindex.text.encoders import TEXT_ENCODERS, create_text_encoder

ENCODERS = TEXT_ENCODERS.names()


@pytest.mark.parametrize("name", ENCODERS)
def test_every_encoder_resolves_and_documents_its_spec(name):
    entry = TEXT_ENCODERS.entry(name)
    assert callable(entry.obj)
    usage = entry.metadata["usage"]
    assert usage == name or usage.startswith(f"{name}:")  # NAME or NAME:ARGUMENT, as the docs table writes it


@pytest.mark.parametrize("name", [n for n in ENCODERS if ":" in TEXT_ENCODERS.entry(n).metadata["usage"]])
def test_encoders_that_need_an_argument_say_so(name):
    with pytest.raises(ModelError):
        create_text_encoder(name)


@pytest.mark.parametrize("name", [n for n in ENCODERS if ":" not in TEXT_ENCODERS.entry(n).metadata["usage"]])
def test_encoders_without_argument_encode_unit_rows(name):
    encoder = create_text_encoder(name)
    rows = encoder.encode(["a cat on a sofa", "a red car"])
    assert rows.shape == (2, encoder.dim) and rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert encoder.cache_id and encoder.spec == name
