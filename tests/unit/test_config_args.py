"""The one config-to-CLI helper: every field of a dataclass config becomes a flag with its default and back."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from moaw_core.cli.config_args import add_config_arguments, config_from_args


@dataclass(frozen=True)
class Demo:
    name: str = "a"
    steps: int = 3
    lr: float = 1e-3
    flip: bool = True
    seeds: tuple[int, ...] = (0, 1)


def _parse(argv, **kw):
    p = argparse.ArgumentParser()
    add_config_arguments(p, Demo, **kw)
    return config_from_args(Demo, p.parse_args(argv))


def test_round_trip_defaults_and_values():
    assert _parse([]) == Demo()
    cfg = _parse(["--name", "b", "--steps", "5", "--lr", "0.5", "--no-flip", "--seeds", "3", "4", "5"])
    assert cfg == Demo("b", 5, 0.5, False, (3, 4, 5))


def test_bad_values_required_and_skip():
    with pytest.raises(SystemExit):
        _parse(["--steps", "x"])
    with pytest.raises(SystemExit):
        _parse([], required=("name",))
    p = argparse.ArgumentParser()
    add_config_arguments(p, Demo, skip=("lr",))
    assert not hasattr(p.parse_args([]), "lr")
    with pytest.raises(TypeError, match="dataclass"):
        add_config_arguments(argparse.ArgumentParser(), dict)


def test_the_verbs_use_it():
    """train, transfer and bench take their flags from their config dataclasses through the helper."""
    from moaw_core.__main__ import build_parser
    from moaw_core.cli.train import config_from_args as train_config
    from moaw_core.training.trainer import TrainConfig

    args = build_parser(["train"]).parse_args(["train", "--steps", "7", "--no-flip"])
    cfg = train_config(args)
    assert isinstance(cfg, TrainConfig) and cfg.steps == 7 and cfg.flip is False
    args = build_parser(["transfer"]).parse_args(["transfer", "--pipeline", "p", "--source", "s", "--prompt", "x"])
    assert args.pipeline == "p" and args.steps == 30
    args = build_parser(["bench"]).parse_args(["bench", "--cases", "c", "--mode", "blend", "--k-max", "4"])
    assert (args.mode, args.k_max, args.normalize) == ("blend", 4, True)
    with pytest.raises(SystemExit):
        build_parser(["bench"]).parse_args(["bench", "--cases", "c", "--mode", "sideways"])
