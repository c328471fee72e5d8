"""Test helpers: locate and import the pinned ComfyUI host in-process, build tiny random-init native models.

The host lives in `.cache/ComfyUI` (installed by scripts/setup.sh) or where `MOAW_COMFYUI_DIR` points.
When `MOAW_REQUIRE_HOST=1` (CI), a missing host fails the tests that need it instead of skipping them.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
COMFY_DIR = Path(os.environ.get("MOAW_COMFYUI_DIR", ROOT / ".cache" / "ComfyUI"))
REQUIRE_HOST = os.environ.get("MOAW_REQUIRE_HOST") == "1"
PACK_MODULE = "moaw_pack"


def host_missing_reason() -> str | None:
    if not (COMFY_DIR / "main.py").is_file():
        return f"ComfyUI host not found at {COMFY_DIR} (run scripts/setup.sh)"
    return None


def require_host() -> Path:
    """Skip (locally) or fail (CI, MOAW_REQUIRE_HOST=1) when the host is missing."""
    reason = host_missing_reason()
    if reason:
        if REQUIRE_HOST:
            pytest.fail(reason)
        pytest.skip(reason)
    return COMFY_DIR


def import_comfy():
    """Import ComfyUI in-process on CPU. Returns the `comfy` package."""
    require_host()
    path = str(COMFY_DIR)
    if path in sys.path:
        sys.path.remove(path)
    sys.path.insert(0, path)  # as main.py runs: the host's own folder first
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # before comfy.model_management, or it probes CUDA
    import comfy.model_management  # noqa: F401
    import comfy.sample  # noqa: F401
    import comfy.samplers  # noqa: F401
    import comfy.sd  # noqa: F401

    return comfy


def load_pack():
    """Import this repository as a ComfyUI custom-node package (as ComfyUI does), under `moaw_pack`."""
    import_comfy()
    if PACK_MODULE in sys.modules:
        return sys.modules[PACK_MODULE]
    spec = importlib.util.spec_from_file_location(
        PACK_MODULE, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_MODULE] = module
    spec.loader.exec_module(module)
    module.nodes.all_nodes()  # imports every node module, as ComfyUI's loader does
    return module


def comfy_nodes():
    """ComfyUI's own `nodes.py` (KSampler's `common_ksampler`, VAEEncode, ...) as a reference for tests.

    The pack never imports it (its `nodes/` package would shadow the name when the pack folder comes first on
    sys.path); tests load the host's file by path under the distinct name `comfyui_nodes`, or reuse it when the
    host already imported it as `nodes` (comfy_extras do)."""
    import_comfy()
    host_file = (COMFY_DIR / "nodes.py").resolve()
    existing = sys.modules.get("nodes")
    if existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() == host_file:
        return existing
    name = "comfyui_nodes"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, host_file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def random_state_dict(module: torch.nn.Module, seed: int = 0, std: float = 0.05) -> dict[str, torch.Tensor]:
    """Deterministic random values for every floating tensor of `module` (native models start uninitialised)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in module.state_dict().items():
        if value.dtype.is_floating_point:
            out[key] = torch.randn(value.shape, generator=g) * std
        else:
            out[key] = value.clone()
    return out


def tiny_wan_state_dict(num_layers: int = 2, dim: int = 128, in_dim: int = 16, out_dim: int = 16, seed: int = 0,
                        i2v: bool = False) -> dict[str, torch.Tensor]:
    """A Wan 2.1 state dict in the original key format, small enough for CPU. ComfyUI's detection fixes
    head dim 128, freq_dim 256 and text_dim 4096, so those are kept."""
    import_comfy()
    import comfy.ldm.wan.model as wan
    import comfy.ops

    model = wan.WanModel(
        model_type="i2v" if i2v else "t2v", dim=dim, ffn_dim=2 * dim, num_heads=dim // 128, num_layers=num_layers,
        in_dim=in_dim, out_dim=out_dim, text_dim=4096, freq_dim=256, operations=comfy.ops.disable_weight_init,
    )
    return random_state_dict(model, seed)


def load_native(sd: dict[str, torch.Tensor]):
    """Load a native diffusion-model state dict exactly as ComfyUI's UNETLoader does (detection included)."""
    comfy = import_comfy()
    patcher = comfy.sd.load_diffusion_model_state_dict(sd)
    if patcher is None:
        raise RuntimeError("ComfyUI could not detect the model type of this state dict")
    return patcher


def _patcher_for(model_config, seed: int):
    """Build the model of a `comfy.supported_models` config, fill it with seeded random weights, wrap it."""
    comfy = import_comfy()
    import comfy.model_patcher

    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({})
    model.diffusion_model.load_state_dict(random_state_dict(model.diffusion_model, seed), strict=True)
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


def tiny_hunyuan_video(seed: int = 0, depth: int = 1, single: int = 1):
    """HunyuanVideo (T2V) through comfy.supported_models.HunyuanVideo, hidden 128 (1 head; axes 16+56+56)."""
    import_comfy()
    import comfy.supported_models as sm

    cfg = {
        "image_model": "hunyuan_video", "in_channels": 16, "out_channels": 16, "patch_size": [1, 2, 2],
        "vec_in_dim": 768, "axes_dim": [16, 56, 56], "meanflow": False, "context_in_dim": 64,
        "hidden_size": 128, "mlp_ratio": 4.0, "num_heads": 1, "depth": depth, "depth_single_blocks": single,
        "theta": 256, "qkv_bias": True, "byt5": False, "guidance_embed": False,
        "use_cond_type_embedding": False, "vision_in_dim": None,
    }
    return _patcher_for(sm.HunyuanVideo(cfg), seed)


def tiny_svd(seed: int = 0):
    """SVD img2vid (openaimodel.UNetModel with VideoResBlock / SpatialVideoTransformer) through
    comfy.supported_models.SVD_img2vid, with 64 base channels (head size 64 is fixed by the config) and two levels."""
    import_comfy()
    import comfy.supported_models as sm

    cfg = {
        "use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
        "legacy": False, "num_classes": "sequential", "adm_in_channels": 768, "in_channels": 8,
        "model_channels": 64, "num_res_blocks": [1, 1], "transformer_depth": [1, 1], "channel_mult": [1, 2],
        "transformer_depth_middle": 1, "use_linear_in_transformer": True, "context_dim": 64,
        "transformer_depth_output": [1, 1, 1, 1], "use_temporal_attention": True,
        "use_temporal_resblock": True, "extra_ff_mix_layer": True, "use_spatial_context": True,
        "merge_strategy": "learned_with_images", "merge_factor": 0.0, "video_kernel_size": [3, 1, 1],
        "disable_temporal_crossattention": False, "max_ddpm_temb_period": 10000,
    }
    return _patcher_for(sm.SVD_img2vid(cfg), seed)


def tiny_ltxv(seed: int = 0, num_layers: int = 2):
    """LTX-Video through comfy.supported_models.LTXV: inner dim 48 (3 heads of 16), 128 latent channels."""
    import_comfy()
    import comfy.supported_models as sm

    cfg = {"image_model": "ltxv", "in_channels": 128, "cross_attention_dim": 48, "attention_head_dim": 16,
           "num_attention_heads": 3, "caption_channels": 64, "num_layers": num_layers}
    return _patcher_for(sm.LTXV(cfg), seed)


def load_bridge():
    """Import `nodes/bridge.py` (ComfyUI glue of the pack) as a plain module, without the node registry."""
    import_comfy()
    name = "moaw_bridge"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "nodes" / "bridge.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# ---- a real ComfyUI server ---------------------------------------------------------------------------------

class ComfyServer:
    def __init__(self, url: str, log_path: Path, base: Path, proc: subprocess.Popen):
        self.url, self.log_path, self.base, self.proc = url, log_path, base, proc

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return json.loads(r.read())

    def post_prompt(self, prompt: dict) -> dict:
        """POST an API-format prompt. Returns the server's JSON (or its JSON error body on HTTP 400)."""
        body = json.dumps({"prompt": prompt, "client_id": uuid.uuid4().hex}).encode()
        req = urllib.request.Request(self.url + "/prompt", data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return {"http_status": e.code, **json.loads(e.read() or b"{}")}

    def wait(self, prompt_id: str, timeout: float = 600) -> dict:
        """Wait until the prompt is in /history; returns its history entry."""
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("ComfyUI server died:\n" + self.log()[-4000:])
            hist = self.get(f"/history/{prompt_id}")
            if prompt_id in hist and hist[prompt_id].get("status", {}).get("completed") is not None:
                return hist[prompt_id]
            if prompt_id in hist and hist[prompt_id].get("status", {}).get("status_str") == "error":
                return hist[prompt_id]
            time.sleep(0.5)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout}s\n" + self.log()[-4000:])

    def run(self, prompt: dict, timeout: float = 600) -> dict:
        res = self.post_prompt(prompt)
        assert "prompt_id" in res, f"prompt rejected: {json.dumps(res)[:3000]}"
        return self.wait(res["prompt_id"], timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(base: Path | None = None, startup_timeout: float = 240):
    """Start `main.py --cpu` on a free loopback port with this pack in `<base>/custom_nodes/moaw`; always stopped.

    `base` (a temporary folder when None) becomes ComfyUI's --base-directory: models, input, output, user."""
    comfy_dir = require_host()
    with contextlib.ExitStack() as stack:
        if base is None:
            base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="moaw_comfy_")))
        base = Path(base)
        for sub in ("custom_nodes", "input", "output", "user", "temp", "models"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        link = base / "custom_nodes" / "moaw"
        if not link.exists():
            os.symlink(ROOT, link)
        port = _free_port()
        log_path = base / "server.log"
        cmd = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
               "--base-directory", str(base), "--disable-auto-launch", "--database-url", "sqlite:///:memory:"]
        # One OpenMP thread unless told otherwise: the test models are tiny, and on a shared machine torch's
        # spinning thread pool made the tiny demo workflow 30x slower (600 s timeout vs 22 s with one thread).
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("MOAW_SERVER_THREADS", "1")}
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=comfy_dir, stdout=log, stderr=subprocess.STDOUT, env=env)
        server = ComfyServer(f"http://127.0.0.1:{port}", log_path, base, proc)
        try:
            end = time.time() + startup_timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError("ComfyUI server exited during start-up:\n" + server.log()[-4000:])
                try:
                    server.get("/system_stats")
                    break
                except (urllib.error.URLError, ConnectionError, OSError):
                    if time.time() > end:
                        raise TimeoutError(f"ComfyUI server did not start in {startup_timeout} s:\n"
                                           + server.log()[-4000:])
                    time.sleep(0.5)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)
