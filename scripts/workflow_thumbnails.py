"""Template thumbnails: the browser test's screenshots -> workflows/<name>.jpg (the Templates browser of
ComfyUI's frontend asks a custom node pack for `<template>.jpg` next to the template's JSON).

    MOAW_REQUIRE_HOST=1 .venv/bin/python -m pytest tests/browser    # writes out/browser/<name>[.run].png
    .venv/bin/python scripts/workflow_thumbnails.py                  # writes workflows/<name>.jpg

The screenshot after a run (outputs shown on the nodes) is preferred over the one taken on opening.
"""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SIDEBAR, TOPBAR, SIDE = 60, 80, 512  # frontend chrome cropped off (px at the 1600 x 1000 window); thumbnail size


def thumbnail(shot: Path, out: Path) -> None:
    img = Image.open(shot).convert("RGB")
    img = img.crop((SIDEBAR, TOPBAR, img.width, img.height))
    img.thumbnail((SIDE, SIDE), Image.LANCZOS)
    canvas = Image.new("RGB", (SIDE, SIDE), (32, 32, 32))
    canvas.paste(img, ((SIDE - img.width) // 2, (SIDE - img.height) // 2))
    canvas.save(out, quality=88)


def main(shots: Path = ROOT / "out" / "browser") -> int:
    done = 0
    for wf in sorted((ROOT / "workflows").glob("*.json")):
        shot = next((p for p in (shots / f"{wf.stem}.run.png", shots / f"{wf.stem}.png") if p.is_file()), None)
        if shot is None:
            print(f"no screenshot for {wf.name} in {shots} (run tests/browser first)")
            continue
        thumbnail(shot, wf.with_suffix(".jpg"))
        print(f"{shot.name} -> {wf.with_suffix('.jpg').relative_to(ROOT)}")
        done += 1
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main(*(Path(a) for a in sys.argv[1:])))
