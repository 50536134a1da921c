"""A bundle describes what it needs (issue 18): every kind of trained model records its input, older files get it
derived from their mode, the index is checked against it with a clear refusal, and the inputs made for `apply` are
the ones training used."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mmindex import Engine
from mmindex.errors import DetectorError
from mmindex.extract.inputs import IndexFacts, ModelInput, clip_times, sample_sequence
from mmindex.index.store import Store
from mmindex.learn import applicable, checkpoint, features
from mmindex.learn.clips import ClipData
from mmindex.learn.config import TrainConfig
from mmindex.learn.data import load_dataset
from mmindex.learn.model import Detector
from mmindex.learn.sequence import SequenceConfig, make_sequences, train_sequence
from mmindex.learn.video3d import ClipConfig, train_clips
from tests.learn.conftest import TRAIN_NPZ

D = 8
INDEX = IndexFacts("efficientnet_lite0", "w1", D)


def _probe(path, backbone="efficientnet_lite0", weights="w1", dim=D):
    det = Detector(TrainConfig(mode="probe", backbone=backbone), ["a", "b"], "sigmoid", in_dim=dim)
    checkpoint.save_bundle(path, "p", det, weights, dim)
    return path


def _scratch(path):
    det = Detector(TrainConfig(mode="scratch", arch="lenet", input_size=28, channels=1), ["a", "b"], "softmax")
    checkpoint.save_bundle(path, "s", det, None, None)
    return path


def _without_input(path):
    """The file as mmindex wrote it before issue 18: no `input` key."""
    doc = torch.load(path, weights_only=True)
    del doc["input"]
    torch.save(doc, path)
    return path


def test_each_detector_mode_records_its_input_and_old_bundles_get_the_same(tmp_path):
    probe = applicable.load(_probe(tmp_path / "p.mmdet"))
    assert probe.mode == "probe" and probe.input == ModelInput("embedding", backbone="efficientnet_lite0",
                                                               weights_id="w1", dim=D)
    scratch = applicable.load(_scratch(tmp_path / "s.mmdet"))
    assert scratch.input == ModelInput("pixels", size=28, channels=1, fit="stretch")
    for path in (tmp_path / "p.mmdet", tmp_path / "s.mmdet"):
        recorded = applicable.load(path).input
        assert applicable.load(_without_input(path)).input == recorded
    finetune = checkpoint.input_of(TrainConfig(mode="finetune", backbone="efficientnet_lite0"), "w1", None)
    assert (finetune.kind, finetune.fit, finetune.size, finetune.resize, finetune.mean, finetune.interpolation) == \
        ("pixels", "crop", 224, 256, (0.5, 0.5, 0.5), "bicubic")  # EfficientNet-Lite's own preprocessing
    x = np.random.default_rng(0).standard_normal((5, D)).astype(np.float32)
    assert probe.score(x).shape == (5, 2) and probe.score(x).dtype == np.float16


def test_sequence_and_clip_models_record_their_rate_and_shape(tmp_path):
    rng = np.random.default_rng(0)
    seqs = make_sequences(rng.standard_normal((40, 6, D)), rng.integers(0, 2, 40))
    seqs.rate, seqs.backbone, seqs.weights_id = 2.0, "efficientnet_lite0", "w1"
    train_sequence(seqs, tmp_path / "o.mmseq", SequenceConfig(epochs=1), curves=False)
    seq = applicable.load(tmp_path / "o.mmseq")
    assert seq.mode == "sequence" and seq.input == ModelInput("sequence", backbone="efficientnet_lite0",
                                                              weights_id="w1", dim=D, frames=6, rate=2.0)
    scores = seq.score(rng.standard_normal((3, 6, D)).astype(np.float32), np.array([6, 2, 1]))
    assert scores.shape == (3, 2) and np.allclose(scores.astype(np.float32).sum(1), 1, atol=1e-2)
    clips = ClipData(rng.integers(0, 256, (12, 4, 1, 8, 8), dtype=np.uint8), np.tile([0, 1], 6), ["l", "r"], fps=10.0)
    train_clips(clips, tmp_path / "m.mmclip", ClipConfig(width=2, epochs=1, batch_size=4), curves=False, device="cpu")
    clip = applicable.load(tmp_path / "m.mmclip")
    assert clip.mode == "clip" and clip.input == ModelInput("clip", frames=4, channels=1, size=8, width=8, rate=10.0,
                                                            unit=255.0)
    assert clip.score(clips.x[:3]).shape == (3, 2)
    for path in (tmp_path / "o.mmseq", tmp_path / "m.mmclip"):  # written before issue 18: derived from the file
        old = applicable.load(_without_input(path)).input
        assert old.kind in ("sequence", "clip") and old.rate is None
    assert applicable.load(tmp_path / "m.mmclip").input.unit == 255.0  # uint8 clips: from the normalisation


def test_the_index_is_checked_against_what_the_model_takes():
    assert ModelInput("embedding", backbone="efficientnet_lite0", weights_id="w1", dim=D).misfit(INDEX) is None
    other = ModelInput("embedding", backbone="resnet50", weights_id="w9", dim=2048).misfit(INDEX)
    assert "resnet50" in other and "index holds efficientnet_lite0 features (weights w1)" in other
    seq = ModelInput("sequence", dim=D, frames=8, rate=2.0)
    assert "stores no keyframe embeddings" in seq.misfit(INDEX) and "--keyframe-embeddings" in seq.misfit(INDEX)
    assert seq.misfit(IndexFacts("efficientnet_lite0", "w1", D, keyframe_embeddings=True)) is None
    assert "takes 16-d features" in ModelInput("sequence", dim=16).misfit(INDEX)
    assert ModelInput("pixels", size=28, channels=1, fit="stretch").misfit(INDEX) is None  # read from the media
    with pytest.raises(DetectorError, match="unknown model input kind"):
        ModelInput("audio")


def test_apply_refuses_a_model_that_does_not_fit_before_writing(tmp_path):
    root = tmp_path / "idx"
    Store.create(root, "efficientnet_lite0", 1280, [("c0", "c", "imagenet")]).close()
    before = (root / "index.sqlite").read_bytes()
    bundle = _probe(tmp_path / "p.mmdet", weights="not-these", dim=1280)
    with pytest.raises(DetectorError, match=r"'p' \(probe\) does not fit this index: .*weights not-these"):
        Engine(root).apply(bundle)
    seqs = make_sequences(np.random.default_rng(0).standard_normal((20, 4, 1280)), np.tile([0, 1], 10))
    train_sequence(seqs, tmp_path / "o.mmseq", SequenceConfig(epochs=1), curves=False)
    with pytest.raises(DetectorError, match="stores no keyframe embeddings"):
        Engine(root).apply(tmp_path / "o.mmseq")
    assert (root / "index.sqlite").read_bytes() == before


def test_pixels_made_for_apply_are_those_training_used(tmp_path):
    ds = load_dataset(str(TRAIN_NPZ))
    trained, _ = features.decode_pixels(ds.subset(np.arange(3)), 20, 1)  # the training inputs (resized to 20)
    spec = ModelInput("pixels", size=20, channels=1, fit="stretch")
    for i in range(3):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.asarray(ds.sources[i], np.uint8)).save(path)
        with Image.open(path) as img:
            assert np.array_equal(spec.pixels(img.convert("RGB")), trained[i])
    assert json.loads(spec.to_json()) == {"kind": "pixels", "size": 20, "channels": 1, "fit": "stretch",
                                          "interpolation": "bilinear", "unit": 1.0}


def test_sequences_are_sampled_at_the_model_rate_and_clips_centred_in_the_shot():
    times = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    emb = np.arange(6, dtype=np.float32)[:, None].repeat(2, 1)
    assert sample_sequence(times, emb, 8, None)[:, 0].tolist() == [0, 1, 2, 3, 4, 5]
    assert sample_sequence(times, emb, 4, None)[:, 0].tolist() == [0, 2, 3, 5]  # evenly spread
    assert sample_sequence(times, emb, 8, 1.0)[:, 0].tolist() == [0, 2, 4]  # one a second, from the first
    assert sample_sequence(times, emb, 2, 2.0)[:, 0].tolist() == [0, 1]  # at most `frames`
    assert sample_sequence(times, emb, 3, 4.0)[:, 0].tolist() == [0, 0, 1]  # denser: the nearest keyframe
    assert clip_times(10.0, 12.0, 4, 2.0) == [10.25, 10.75, 11.25, 11.75]
    assert clip_times(0.0, 0.5, 4, 2.0) == [0.0, 0.0, 0.5 - 1e-6, 0.5 - 1e-6]  # a short shot repeats its ends
    # several clips: whole clips from the first that fits to the last; a shot too short for two: the middle one each
    assert clip_times(10.0, 16.0, 4, 2.0, clips=3) == [10.0, 10.5, 11.0, 11.5, 12.0, 12.5, 13.0, 13.5,
                                                     14.0, 14.5, 15.0, 15.5]
    assert clip_times(10.0, 12.0, 4, 2.0, clips=2) == [10.25, 10.75, 11.25, 11.75] * 2


@pytest.mark.parametrize("loss", ["softmax", "sigmoid", "mse"])
def test_a_linear_probe_scores_as_its_network_with_normalisation_and_calibration_folded_in(tmp_path, loss):
    torch.manual_seed(0)
    det = Detector(TrainConfig(mode="probe", backbone="efficientnet_lite0"), ["a", "b", "c"], loss, in_dim=D)
    det.set_normalisation(torch.randn(64, D) * 3 + 1)
    det.head.net[-1].weight.data.mul_(5)  # scores spread over [0, 1]
    det.temperature.fill_(1.7)
    det.platt_a.copy_(torch.tensor([0.5, 2.0, 1.3]))
    det.platt_b.copy_(torch.tensor([0.1, -1.0, 0.3]))
    checkpoint.save_bundle(tmp_path / "p.mmdet", "p", det, "w1", D)
    x = np.random.default_rng(1).standard_normal((500, D)).astype(np.float32)
    folded = applicable.load(tmp_path / "p.mmdet").score(x).astype(np.float32)
    network = checkpoint.load_bundle(tmp_path / "p.mmdet").score_embeddings(x).astype(np.float32)
    assert np.abs(folded - network).max() <= 1e-3 and folded.std() > 0.05  # float16 rounding only
