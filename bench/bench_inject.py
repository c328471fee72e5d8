"""Benchmark of Moaw capture and injection on a native ComfyUI Wan model (random weights). Prints JSON.

    .venv/bin/python bench/bench_inject.py                 # tiny Wan on CPU (seconds)
    .venv/bin/python bench/bench_inject.py --wan-1.3b      # Wan 2.1 1.3B shape (dim 1536, 30 layers), 480p, GPU

Measured in one run, interleaved, median of `--repeats`:
- sampling with injection (add, every layer, cond only) vs plain sampling, same model / noise / steps / seed;
- training-free capture of S steps vs S x one model forward (target <= 1.10);
- feature cache bytes vs layers x steps x T*H*W x C x 2 (fp16).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _import_comfy(cpu: bool):
    comfy_dir = Path(os.environ.get("MOAW_COMFYUI_DIR", ROOT / ".cache" / "ComfyUI"))
    sys.path.insert(0, str(comfy_dir))
    sys.path.append(str(ROOT))
    import comfy.cli_args

    comfy.cli_args.args.cpu = cpu
    import comfy.model_management  # noqa: F401
    import comfy.sample  # noqa: F401
    import comfy.samplers  # noqa: F401
    import comfy.sd  # noqa: F401
    import importlib.util

    spec = importlib.util.spec_from_file_location("moaw_bridge", ROOT / "nodes" / "bridge.py")
    bridge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bridge)
    return comfy, bridge


def _wan(comfy, dim, layers, ffn, dtype):
    import comfy.ldm.wan.model as wan
    import comfy.ops

    with torch.device("meta"):
        shape_model = wan.WanModel(dim=dim, ffn_dim=ffn, num_heads=dim // 128, num_layers=layers, in_dim=16,
                                   out_dim=16, text_dim=4096, freq_dim=256, operations=comfy.ops.disable_weight_init)
    g = torch.Generator().manual_seed(0)
    sd = {k: (torch.randn(v.shape, generator=g) * 0.02).to(dtype) for k, v in shape_model.state_dict().items()}
    return comfy.sd.load_diffusion_model_state_dict(sd)


def _timed(fn, sync):
    sync()
    t = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - t, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wan-1.3b", dest="big", action="store_true", help="Wan 2.1 1.3B shape at 480p, 33 frames")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--latent", type=int, nargs=3, metavar=("T", "H", "W"), default=None,
                    help="override the latent size (e.g. the 1.3B shape at a CPU-sized latent: --latent 3 16 16)")
    args = ap.parse_args(argv)
    cuda = args.big and torch.cuda.is_available()
    comfy, B = _import_comfy(cpu=not cuda)
    from moaw_core.engine.inject import InjectConfig

    if args.big:
        dim, layers, ffn, latent = 1536, 30, 8960, (1, 16, 9, 60, 104)  # 480x832, 33 frames
        dtype = torch.bfloat16 if cuda else torch.float32
    else:
        dim, layers, ffn, latent = 128, 4, 256, (1, 16, 5, 16, 16)
        dtype = torch.float32
    if args.latent:
        latent = (1, 16, *args.latent)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    p = _wan(comfy, dim, layers, ffn, dtype)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(latent, generator=g)
    cond = [[torch.randn(1, 16, 4096, generator=g), {}]]
    names = [f"block.{i}" for i in range(layers)]

    def sample(m):
        return comfy.sample.sample(m, noise, args.steps, 1.0, "euler", "simple", cond, cond, torch.zeros_like(noise),
                                   seed=0, disable_pbar=True)

    cap_s, feats = _timed(lambda: B.capture_comfy(p, {"samples": noise}, cond, cond, args.steps, names, seed=0), sync)
    injected = B.apply_injection(p, feats, InjectConfig(strength=0.3))
    sample(p), sample(injected)  # warm-up (model load, allocator)
    plain_t, inj_t, cap_t = [], [], []
    for _ in range(args.repeats):
        plain_t.append(_timed(lambda: sample(p), sync)[0])
        inj_t.append(_timed(lambda: sample(injected), sync)[0])
        cap_t.append(_timed(lambda: B.capture_comfy(p, {"samples": noise}, cond, cond, args.steps, names, seed=0),
                            sync)[0])
    fwd_t = _forward_times(comfy, p, noise, cond, args.repeats, sync)
    t, h, w = latent[2], latent[3] // 2, latent[4] // 2
    formula = layers * args.steps * t * h * w * dim * 2
    plain, inj, cap, fwd = (statistics.median(x) for x in (plain_t, inj_t, cap_t, fwd_t))
    print(json.dumps({
        "model": f"wan dim={dim} layers={layers}", "latent": list(latent), "steps": args.steps,
        "device": "cuda" if cuda else "cpu", "dtype": str(dtype), "repeats": args.repeats,
        "plain_sampling_s": plain, "injected_sampling_s": inj, "injection_overhead_ratio": inj / plain,
        "one_forward_s": fwd, "capture_s": cap, "capture_vs_steps_x_forward": cap / (args.steps * fwd),
        "capture_vs_plain_sampling": cap / plain,
        "capture_first_call_s": cap_s, "cache_bytes": feats.nbytes, "cache_bytes_formula": formula,
        "cache_bytes_match": feats.nbytes == formula,
    }, indent=2))
    return 0


def _forward_times(comfy, p, noise, cond, repeats, sync):
    """Time of one conditional model call (apply_model) at sigma 0.5, with the model loaded as for sampling."""
    import comfy.model_management as mm

    mm.load_models_gpu([p])
    dev = p.load_device
    x = noise.to(dev)
    sigma = torch.tensor([0.5], device=dev)
    ctx = cond[0][0].to(dev)
    out = []
    with torch.no_grad():
        p.model.apply_model(x, sigma, c_crossattn=ctx)
        for _ in range(repeats):
            out.append(_timed(lambda: p.model.apply_model(x, sigma, c_crossattn=ctx), sync)[0])
    return out


if __name__ == "__main__":
    raise SystemExit(main())
