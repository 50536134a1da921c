"""`models describe / list / plot`: the lecture's AlexNet conv5 counts, multiply-adds against torchvision's
published figures, and the commands through the real CLI."""

from __future__ import annotations

import json

import pytest
import torchvision.models as tvm
from PIL import Image

from mmindex.errors import ModelError
from mmindex.models import list_models
from mmindex.models.describe import describe_model, parse_input, smallest_input
from tests.conftest import run_cli


def test_alexnet2012_conv5_has_the_lectures_figures():
    d = describe_model("alexnet2012")
    assert d.input_shape == (3, 227, 227)
    conv5 = next(r for r in d.layers if r.label == "conv5")
    assert conv5.name == "features.12" and conv5.output_shape == (256, 13, 13)
    assert conv5.units == 13 * 13 * 256 == 43_264
    assert conv5.weights == 384 * 256 * 3 * 3 == 884_736
    assert conv5.weights_with_biases == 884_992
    assert conv5.connections == 13 * 13 * 884_736 == 149_520_384
    # The paper's shapes: conv1 55×55×96 from a 227×227 input, three conv layers at 13×13, fc6 reads 6×6×256.
    shapes = {r.label: r.output_shape for r in d.layers if r.kernel}
    assert shapes["conv1"] == (96, 55, 55) and shapes["conv2"] == (256, 27, 27) and shapes["fc6"] == (4096,)
    assert [r.label for r in d.layers if r.kernel] == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7",
                                                        "fc8"]
    assert d.params == 62_378_344 == sum(r.weights_with_biases for r in d.layers)


@pytest.mark.parametrize("name, weights", [("alexnet", tvm.AlexNet_Weights), ("vgg16", tvm.VGG16_Weights),
                                           ("resnet18", tvm.ResNet18_Weights), ("googlenet", tvm.GoogLeNet_Weights),
                                           ("densenet121", tvm.DenseNet121_Weights)])
def test_connections_sum_to_torchvisions_published_multiply_adds(name, weights):
    d = describe_model(name)
    # torchvision's "GFLOPS" column counts multiply-adds of the conv and linear layers, to 3 decimals.
    assert d.macs / 1e9 == pytest.approx(weights.IMAGENET1K_V1.meta["_ops"], abs=6e-4)
    for r in d.layers:
        grid = r.output_shape[1] * r.output_shape[2] if len(r.output_shape) == 3 else 1
        assert r.connections == grid * r.weights
        assert r.units == grid * r.output_shape[0]


def test_input_shape_changes_the_grid_not_the_weights():
    big = describe_model("alexnet2012", parse_input("3x355x355"))  # conv5 at 21×21
    conv5 = next(r for r in big.layers if r.label == "conv5")
    assert conv5.output_shape == (256, 21, 21) and conv5.weights == 884_736
    assert conv5.connections == 21 * 21 * 884_736


def test_too_small_or_malformed_inputs_get_clear_errors():
    assert smallest_input("alexnet2012") == 67
    describe_model("alexnet2012", (3, 67, 67))
    with pytest.raises(ModelError, match="too small for alexnet2012: the smallest that works is 3x67x67"):
        describe_model("alexnet2012", (3, 66, 66))
    with pytest.raises(ModelError, match="3 input channels"):
        describe_model("resnet18", (1, 224, 224))
    with pytest.raises(ModelError, match="CxHxW"):
        parse_input("224")


def test_describe_cli_prints_the_conv5_row_and_its_errors():
    doc = json.loads(run_cli("models", "describe", "alexnet2012", "--json").stdout)
    conv5 = next(r for r in doc["layers"] if r["label"] == "conv5")
    assert (conv5["units"], conv5["weights"], conv5["weights_with_biases"], conv5["connections"]) == (
        43_264, 884_736, 884_992, 149_520_384)
    assert doc["input_shape"] == [3, 227, 227] and doc["params"] == 62_378_344

    small = run_cli("models", "describe", "alexnet2012", "--input", "3x32x32", check=False)
    assert small.returncode == 1 and small.stderr.strip() == (
        "error: input 3x32x32 is too small for alexnet2012: the smallest that works is 3x67x67")
    typo = run_cli("models", "describe", "resnet51", check=False)
    assert typo.returncode == 1 and "error: unknown model 'resnet51'; did you mean: " in typo.stderr
    assert "resnet50" in typo.stderr.split("did you mean: ")[1].split(";")[0]


def test_describe_table_text(tmp_path):
    text = run_cli("models", "describe", "alexnet2012").stdout
    conv5 = next(line for line in text.splitlines() if "conv5" in line)
    for figure in ("256×13×13", "43,264", "884,736", "884,992", "149,520,384"):
        assert figure in conv5


def test_models_list_cli_shows_every_model_with_its_figures():
    rows = {r["name"]: r for r in json.loads(run_cli("models", "list", "--json").stdout)["models"]}
    assert set(rows) == set(list_models())
    for r in rows.values():
        assert r["depth"] > 0 and r["params"] > 1e6 and r["macs"] > 1e8 and r["top1_source"]
        assert r["top1_error"] is not None and 15 < r["top1_error"] < 45
    assert rows["efficientnet_lite0"]["weights_status"] == "installed"
    assert rows["alexnet2012"]["weights_status"] == "none published"
    assert rows["resnet152"]["top5_error"] == pytest.approx(100 - 94.046)
    assert rows["alexnet2012"]["top5_error"] == pytest.approx(18.2)
    assert rows["vgg19"]["depth"] == 19 and rows["resnet152"]["depth"] == 152
    assert rows["resnet152"]["macs"] > rows["resnet50"]["macs"] > rows["resnet18"]["macs"]


def test_models_plot_writes_the_depth_chart(tmp_path):
    out = tmp_path / "depth.png"
    proc = run_cli("models", "plot", "--out", str(out))
    assert str(out) in proc.stdout
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width >= 800 and img.height >= 400
        # Not a blank canvas: the bars and labels draw many colours.
        assert len(img.convert("RGB").getcolors(1 << 20)) > 50
