"""Weights that do not fit a network are refused before anything is copied, naming the first mismatching layer."""

from __future__ import annotations

import pytest
import torch

from mmindex.errors import ModelError
from mmindex.models import create_model


def test_other_architectures_weights_name_the_first_mismatching_layer(tmp_path):
    torchvision_alexnet = tmp_path / "alexnet.pth"
    torch.save(create_model("alexnet", weights=None).net.state_dict(), torchvision_alexnet)
    with pytest.raises(ModelError, match=r"do not fit model 'alexnet2012': first mismatching layer 'features.0': "
                                         r"'features.0.weight' has shape \(64, 3, 11, 11\) in the weights, "
                                         r"\(96, 3, 11, 11\) in the model"):
        create_model("alexnet2012", weights=str(torchvision_alexnet))


def test_a_refused_state_dict_leaves_the_model_untouched():
    torch.manual_seed(0)
    model = create_model("alexnet2012", weights=None)
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    torch.manual_seed(1)
    other = create_model("alexnet2012", weights=None).net.state_dict()
    other["classifier.6.weight"] = other["classifier.6.weight"][:10]  # fc8 of a 10-class net: only the last layer
    with pytest.raises(ModelError, match="first mismatching layer 'classifier.6'"):
        model.load_weights(other, "other")
    for k, v in model.net.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} was overwritten by a refused state_dict"
    assert model.weights_id == "random"

    del other["classifier.6.weight"]
    with pytest.raises(ModelError, match="the weights have no 'classifier.6.weight'"):
        model.load_weights(other, "other")
    extra = dict(model.net.state_dict(), **{"head.weight": torch.zeros(1)})
    with pytest.raises(ModelError, match="1 keys the model lacks, the first 'head.weight'"):
        model.load_weights(extra, "extra")
