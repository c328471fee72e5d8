"""The one CLI: `python -m moaw_core <verb> ...`. Each verb lives in its own module, imported lazily."""
from __future__ import annotations

import argparse
import importlib
import sys

# verb -> (module, one-line help). The module exposes add_arguments(parser) and main(args) -> int.
_VERBS: dict[str, tuple[str, str]] = {
    "demo": ("moaw_core.cli.demo", "The main job: motion transfer on the bundled tiny models, with a report."),
    "train": ("moaw_core.training.trainer", "Train the demo codec, generator or Moaw tracker (accelerate; resumable)."),
    "predict": ("moaw_core.cli.predict", "Run a Moaw tracker file on a video and save its dense tracks."),
    "eval": ("moaw_core.cli.evaluate", "Score a Moaw tracker vs zero motion / DIS / LK (synthetic) and on Sintel."),
    "score": ("moaw_core.selection.layer_selection", "Score every (layer, step) of a tracker/generator on motion classes."),
    "bench": ("moaw_core.cli.bench", "MTBench: difficulty by trajectory clusters; transfer scored per difficulty."),
    "det": ("moaw_core.det.cli", "DeT: train temporal adapters on one source video (train) or sample with them (apply)."),
    "transfer": ("moaw_core.cli.transfer", "Motion transfer with a diffusers pipeline (real weights; Wan T2V)."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m moaw_core", description="Moaw motion transfer tools.")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, (module_name, help_text) in _VERBS.items():
        p = sub.add_parser(verb, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        importlib.import_module(module_name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(importlib.import_module(args._module).main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
