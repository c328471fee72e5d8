"""MTBench case folders (DeT, Shi et al.): `<case>/videos/<case>.mp4`, `<case>/trajectories/<case>.pth`,
`<case>/masks/<case>/*.png` (plus prompts). `find_cases` lists and checks them; the `bench` verb runs them."""
from __future__ import annotations

from pathlib import Path


def _case_missing(d: Path) -> list[str]:
    need = (f"videos/{d.name}.mp4", f"trajectories/{d.name}.pth", f"masks/{d.name}/")
    return [p for p in need if not (d / p).exists()]


def find_cases(cases_dir) -> list[Path]:
    """Case folders under `cases_dir` (sorted; hidden folders ignored), or [cases_dir] if it is one case.

    Raises:
        FileNotFoundError: no such folder. ValueError: no case folders, or a folder not in MTBench layout.
    """
    root = Path(cases_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"cases_dir: folder not found: {root}")
    if not _case_missing(root):
        return [root]
    subs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not subs:
        raise ValueError(f"cases_dir: no case folders in {root} (expected <case>/videos/<case>.mp4, "
                         f"<case>/trajectories/<case>.pth, <case>/masks/<case>/)")
    bad = {d.name: _case_missing(d) for d in subs if _case_missing(d)}
    if bad:
        raise ValueError(f"cases_dir: {len(bad)} folder(s) in {root} are not in MTBench layout; missing: {bad}")
    return subs
