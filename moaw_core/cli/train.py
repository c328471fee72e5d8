"""The `train` verb: one --flag per `TrainConfig` field (`cli.config_args`); pool / codec / generator / tracker
training with `moaw_core.training.trainer` (accelerate; resumable)."""
from __future__ import annotations

import argparse
import json
import shlex
import sys

from moaw_core.cli.config_args import add_config_arguments
from moaw_core.cli.config_args import config_from_args as _from_args
from moaw_core.training.trainer import TrainConfig, check_config, fit_codec, load_pool, train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One --flag per TrainConfig field (bools: --flag / --no-flag)."""
    add_config_arguments(parser, TrainConfig)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return _from_args(TrainConfig, args)


def main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    check_config(cfg)
    if cfg.task == "pool":
        video, _ = load_pool(cfg)
        print(json.dumps({"pool_clips": len(video), "data_cache": cfg.data_cache}))
        return 0
    if cfg.task == "codec":
        return fit_codec(cfg)
    command = "python -m moaw_core train " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    train(cfg, command)
    return 0
