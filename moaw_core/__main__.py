"""The one CLI: `python -m moaw_core <verb> ...`. Each verb lives in its own module, imported lazily.

An error ends the run with one line `error: ...` on stderr and exit code 2 (argparse's own code for bad
arguments); `--debug` (before or after the verb) shows the full traceback instead."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# verb -> (module, one-line help). The module exposes add_arguments(parser) and main(args) -> int.
_VERBS: dict[str, tuple[str, str]] = {
    "demo": ("moaw_core.cli.demo", "The main job: motion transfer on the bundled tiny models, with a report."),
    "train": ("moaw_core.cli.train", "Train the demo codec, generator or Moaw tracker (accelerate; resumable)."),
    "predict": ("moaw_core.cli.predict", "Run a Moaw tracker file on a video and save its dense tracks."),
    "eval": ("moaw_core.cli.evaluate", "Score a Moaw tracker vs zero motion / DIS / LK (synthetic) and on Sintel."),
    "score": ("moaw_core.cli.score", "Score every (layer, step) of a tracker/generator on motion classes."),
    "bench": ("moaw_core.cli.bench", "MTBench: difficulty by trajectory clusters; transfer scored per difficulty."),
    "det": ("moaw_core.det.cli", "DeT: train temporal adapters on one source video (train) or sample with them (apply)."),
    "transfer": ("moaw_core.cli.transfer", "Motion transfer with a diffusers pipeline (real weights; Wan T2V)."),
}


def build_parser(verbs=None) -> argparse.ArgumentParser:
    """The CLI's parser. verbs: the verbs whose module is imported to add its arguments (None = every verb, as
    tests and docs want); `main` passes only the verb on the command line, so `--help` imports no verb module."""
    parser = argparse.ArgumentParser(prog="python -m moaw_core", description="Moaw motion transfer tools.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    wanted = set(_VERBS if verbs is None else verbs)
    for verb, (module_name, help_text) in _VERBS.items():
        p = sub.add_parser(verb, help=help_text, description=help_text, parents=[debug])
        p.set_defaults(_module=module_name)
        if verb in wanted:
            importlib.import_module(module_name).add_arguments(p)
    return parser


def _verb_in(argv: list[str]) -> str | None:
    """The verb named on the command line (the first argument that is not an option), if any."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in _VERBS else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    verb = _verb_in(argv)
    args = build_parser([verb] if verb else []).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    try:
        return int(importlib.import_module(args._module).main(args) or 0)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - every failure becomes one readable line; --debug shows the trace
        if args.debug:
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2


def one_line(err: BaseException, limit: int = 600) -> str:
    """The message of `err` on one line, cut to `limit` characters; unexpected error types keep their name."""
    text = " ".join(str(err).split()) or type(err).__name__
    if not isinstance(err, (ValueError, TypeError, OSError, MemoryError)):
        text = f"{type(err).__name__}: {text} (a bug? rerun with --debug and report the traceback)"
    elif isinstance(err, FileNotFoundError) and err.filename and str(err.filename) not in text:
        text = f"{text}: {err.filename}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


if __name__ == "__main__":
    sys.exit(main())
