"""The library is host-agnostic: every moaw_core module imports with no ComfyUI anywhere on the path."""
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import moaw_core

ROOT = Path(__file__).resolve().parents[2]


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(moaw_core.__path__, "moaw_core.") if m.name != "moaw_core.__main__")


def test_moaw_core_imports_without_comfy():
    code = (
        "import importlib, sys\n"
        f"mods = {_modules()!r}\n"
        "for m in mods: importlib.import_module(m)\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('comfy', 'comfy_api', 'folder_paths', 'nodes'))\n"
        "assert not bad, bad\n"
        "print(len(mods))\n"
    )
    # cwd=ROOT and a clean path: ComfyUI is not importable there, so an accidental `import comfy` fails loudly.
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]


def test_cli_help_lists_verbs():
    res = subprocess.run([sys.executable, "-m", "moaw_core", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "python -m moaw_core" in res.stdout


def test_requirements_never_pin_torch_and_pyproject_is_gpl():
    reqs = (ROOT / "requirements.txt").read_text().splitlines()
    names = [r.split("#")[0].strip().split("=")[0].split(">")[0].split("<")[0].strip().lower() for r in reqs]
    assert "torch" not in names and "torchvision" not in names
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "GPL-3.0" in meta["project"]["license"]["text"]
    assert meta["tool"]["comfy"]["requires-comfyui"].startswith(">=")
    deps = {d.split(">")[0].split("=")[0].strip().lower() for d in meta["project"]["dependencies"]}
    assert deps == {n for n in names if n}, "pyproject dependencies and requirements.txt disagree"
