"""`mmindex train` makes its options from TrainConfig's fields: every field is an option with the field's default,
the options it had before keep their names, and what is parsed reaches TrainConfig unchanged."""

from __future__ import annotations

import dataclasses

import click
import pytest
from click.testing import CliRunner

from mmindex.cli import main
from mmindex.cli.learn import config_options
from mmindex.learn import TrainConfig

BEFORE = ["--mode", "--backbone", "--arch", "--head", "--hidden", "--dropout", "--loss", "--epochs", "--batch-size",
          "--lr", "--momentum", "--backbone-lr", "--schedule", "--step-every", "--step-factor", "--l2", "--l1",
          "--penalty-from", "--patience", "--val-fraction", "--no-calibrate", "--seed", "--out", "-o", "--val",
          "--name", "--resume", "--device", "--quiet", "-q", "--json"]


def train_options() -> dict[str, click.Option]:
    command = main.commands["train"]
    params = command.get_params(click.Context(command))
    return {p.name: p for p in params if isinstance(p, click.Option)}


def test_every_field_is_an_option_with_its_default_and_help():
    options = train_options()
    for f in dataclasses.fields(TrainConfig):
        option = options[f.name]
        assert f"--{f.name.replace('_', '-')}" in option.opts and option.default == f.default, f.name
        assert f.metadata["help"] and option.help == f.metadata["help"]
    names = {o for p in options.values() for o in [*p.opts, *p.secondary_opts]}
    assert set(BEFORE) <= names


def test_choices_are_the_configs_own():
    from mmindex.learn.config import OUTPUTS
    from mmindex.learn.heads import HEADS
    from mmindex.learn.schedules import SCHEDULES

    options = train_options()
    assert list(options["head"].type.choices) == [*HEADS, *OUTPUTS]  # --head softmax: a linear softmax head
    assert list(options["schedule"].type.choices) == list(SCHEDULES)
    assert list(options["mode"].type.choices) == ["probe", "finetune", "scratch"]


def test_a_new_field_is_a_new_option():
    @dataclasses.dataclass
    class Config:
        label_smoothing: float = dataclasses.field(default=0.1, metadata={"help": "Smoothing.", "min": 0, "max": 1})
        tta: bool = dataclasses.field(default=False, metadata={"help": "Test-time augmentation."})
        width: int = 4

    smoothing, tta, width = config_options(Config)
    assert smoothing.opts == ["--label-smoothing"] and smoothing.default == 0.1 and smoothing.help == "Smoothing."
    assert isinstance(smoothing.type, click.FloatRange) and (smoothing.type.min, smoothing.type.max) == (0, 1)
    assert tta.opts == ["--tta"] and tta.secondary_opts == ["--no-tta"] and tta.default is False
    assert width.type is click.INT and width.default == 4


class Parsed(Exception):
    """Raised by the stand-in trainer to hand back the TrainConfig the CLI built."""


@pytest.fixture
def parsed(monkeypatch):
    """Runs `mmindex train ...` up to the training call and returns the TrainConfig it got."""
    import mmindex.learn

    def fake_train(data, out, config, **kwargs):
        raise Parsed(config, kwargs)

    monkeypatch.setattr(mmindex.learn, "train", fake_train)

    def run(*args: str):
        r = CliRunner().invoke(main, ["train", "data", "--out", "x.mmdet", "-q", *args])
        assert isinstance(r.exception, Parsed), r.output
        return r.exception.args

    return run


def test_parsed_options_reach_train_config(parsed):
    config, kwargs = parsed()
    assert config == TrainConfig()
    config, kwargs = parsed("--no-calibrate", "--epochs", "3", "--lr", "0.05", "--batch-size", "64", "--mode",
                            "scratch", "--warmup", "1.5", "--device", "cpu", "--val", "v", "--name", "n", "--resume")
    assert config == TrainConfig(calibrate=False, epochs=3, lr=0.05, batch_size=64, mode="scratch", warmup=1.5)
    assert kwargs["device"] == "cpu" and kwargs["val_spec"] == "v" and kwargs["name"] == "n" and kwargs["resume"]


@pytest.mark.parametrize("args", [["--epochs", "0"], ["--mode", "bogus"], ["--lr", "0"], ["--momentum", "1"],
                                  ["--val-fraction", "1"], ["--batch-size", "70000"], ["--dropout", "0.99"]])
def test_out_of_range_values_are_usage_errors(args):
    r = CliRunner().invoke(main, ["train", "data", "--out", "x.mmdet", *args])
    assert r.exit_code == 2 and "Invalid value" in r.output
