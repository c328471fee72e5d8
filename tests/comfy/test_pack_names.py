"""The pack's `nodes/` package stays clear of ComfyUI's own top-level `nodes` module.

ComfyUI runs main.py with its folder first on sys.path, but a user's environment (PYTHONPATH, an editable
install, a test runner) can put the pack folder first. The pack must then neither import its own `nodes/` under
the name `nodes` nor need ComfyUI's `nodes.py`: it uses the public `comfy.sample` API instead."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap

import hosttools as H

_SCRIPT = textwrap.dedent("""
    import importlib.util, json, sys
    root, comfy_dir = sys.argv[1], sys.argv[2]
    sys.path[:0] = [root, comfy_dir]          # the pack folder BEFORE the host's: the risky order
    import comfy.cli_args
    comfy.cli_args.args.cpu = True
    import comfy.model_management
    spec = importlib.util.spec_from_file_location("moaw_pack_names", root + "/__init__.py",
                                                  submodule_search_locations=[root])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["moaw_pack_names"] = pack
    spec.loader.exec_module(pack)
    found = [n.__name__ for n in pack.nodes.all_nodes()]
    top = sys.modules.get("nodes")
    ours = sorted(k for k, m in sys.modules.items()
                  if (k == "nodes" or k.startswith("nodes.")) and str(getattr(m, "__file__", "")).startswith(root))
    print(json.dumps({"n": len(found), "inject": "InjectMotionSampler" in found,
                      "top": getattr(top, "__file__", None), "ours": ours}))
""")


def test_pack_loads_without_taking_the_name_nodes():
    comfy_dir = H.require_host()
    r = subprocess.run([sys.executable, "-c", _SCRIPT, str(H.ROOT), str(comfy_dir)], capture_output=True,
                       text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["inject"] and res["n"] > 10
    assert res["ours"] == [], f"the pack's nodes/ package was imported as top-level `nodes`: {res['ours']}"


def test_node_modules_import_no_top_level_nodes():
    """No node module imports `nodes` absolutely (ComfyUI's nodes.py or, shadowed, the pack's own package)."""
    bad = []
    for path in sorted((H.ROOT / "nodes").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            bad += [f"{path.name}:{node.lineno} {n}" for n in names if n == "nodes" or n.startswith("nodes.")]
    assert bad == []


def test_inject_sampler_matches_comfy_ksampler_at_strength_zero():
    """`bridge.ksample` (used instead of ComfyUI's common_ksampler) gives KSampler's exact result."""
    import torch

    pack = H.load_pack()

    model = H.load_native(H.tiny_wan_state_dict(num_layers=1, seed=3))
    latent = {"samples": torch.zeros(1, 16, 2, 4, 4)}
    cond = [[torch.randn(1, 4, 4096, generator=torch.Generator().manual_seed(1)), {}]]
    (ref,) = H.comfy_nodes().common_ksampler(model, 7, 2, 1.0, "euler", "simple", cond, cond, latent)
    ours = pack.nodes.bridge.ksample(model, 7, 2, 1.0, "euler", "simple", cond, cond, latent)
    assert torch.equal(ref["samples"], ours["samples"])
