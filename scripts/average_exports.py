"""Average the weights of several exports of one training run (e.g. the exports `train --export-every` leaves,
copied aside as they are written): `python scripts/average_exports.py OUT FILE [FILE ...] [--step N] [--note TEXT]`.
The shipped tracker of issue #16 round 4 is such a mean (docs/TRAINING.md, Exact commands step 7)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moaw_core.engine.checkpoint import average_model_files  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("out")
    p.add_argument("files", nargs="+")
    p.add_argument("--step", type=int, default=None, help="moaw.step of the result (default: the first file's)")
    p.add_argument("--note", default="", help="text for moaw.averaged_from")
    a = p.parse_args(argv)
    print(average_model_files(a.files, a.out, a.step, a.note))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
