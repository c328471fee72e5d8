"""MotionFeatures: the cached per-(layer, step) hidden states of a tracker / generator pass, and its file format.

Only this module knows the on-disk layout: ONE `.safetensors` file, tensors named `"{layer}/{step:04d}"`, each a
token grid `[B, T, H, W, C]` (B is the captured batch, usually 1 = the cond branch), plus string metadata:

    moaw_format   format version (FORMAT_VERSION)
    moaw_meta     JSON: adapter, family, fingerprint, latent_shape, sigmas, timesteps, layers, grids, source

`step` indexes the capture schedule (`sigmas[step]` is the noise level that produced the tensor). Injection
picks, for every generation step, the cached step whose sigma is nearest.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

FORMAT_VERSION = "1"
_FORMAT_KEY = "moaw_format"
_META_KEY = "moaw_meta"


@dataclass
class MotionFeatures:
    """Cached hidden states keyed by (layer, step).

    Attributes:
        tensors: {(layer, step): [B, T, H, W, C]} token grids (CPU, fp16 by default).
        adapter: adapter name that produced them ("comfy_wan", "diffusers_svd", ...).
        fingerprint: structural fingerprint of the source model (see `moaw_core.engine.adapters`).
        latent_shape: model-input latent shape of the capture, diffusers order `[B, C, T, H, W]`.
        sigmas: noise level of each captured step (index = step).
        timesteps: model timestep of each captured step (same length as sigmas; may equal sigmas).
        source: free-text description of where the features came from.
    """

    tensors: dict[tuple[str, int], torch.Tensor]
    adapter: str
    fingerprint: dict
    latent_shape: tuple[int, ...]
    sigmas: tuple[float, ...]
    timesteps: tuple[float, ...] = ()
    source: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.tensors:
            raise ValueError("MotionFeatures: no tensors (empty capture: check the layer selection and steps)")
        self.latent_shape = tuple(int(s) for s in self.latent_shape)
        self.sigmas = tuple(float(s) for s in self.sigmas)
        self.timesteps = tuple(float(s) for s in self.timesteps) or self.sigmas
        for (layer, step), t in self.tensors.items():
            if not isinstance(t, torch.Tensor) or t.ndim != 5:
                raise ValueError(f"MotionFeatures: tensor {layer}/{step} must be [B, T, H, W, C], got "
                                 f"{getattr(t, 'shape', type(t))}")
            if not t.is_floating_point():
                raise ValueError(f"MotionFeatures: tensor {layer}/{step} has dtype {t.dtype}; features are hidden "
                                 f"states and must be floating point (fp16/bf16/fp32)")
            if not 0 <= step < len(self.sigmas):
                raise ValueError(f"MotionFeatures: step {step} of layer {layer!r} outside sigmas "
                                 f"(len {len(self.sigmas)})")

    # ---- views -------------------------------------------------------------------------------------------
    @property
    def family(self) -> str:
        return str(self.fingerprint.get("family", ""))

    @property
    def layers(self) -> tuple[str, ...]:
        seen = dict.fromkeys(layer for layer, _ in self.tensors)
        return tuple(seen)

    @property
    def steps(self) -> tuple[int, ...]:
        return tuple(sorted({step for _, step in self.tensors}))

    def grid(self, layer: str) -> tuple[int, int, int]:
        """Token grid (T, H, W) of `layer`."""
        for (name, _), t in self.tensors.items():
            if name == layer:
                return tuple(t.shape[1:4])
        raise KeyError(self._unknown(layer))

    def width(self, layer: str) -> int:
        for (name, _), t in self.tensors.items():
            if name == layer:
                return int(t.shape[-1])
        raise KeyError(self._unknown(layer))

    @property
    def nbytes(self) -> int:
        """Sum of the tensors' bytes (the only large storage this object holds)."""
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def get(self, layer: str, step: int) -> torch.Tensor:
        try:
            return self.tensors[(layer, step)]
        except KeyError:
            raise KeyError(f"MotionFeatures has no tensor for layer {layer!r} at step {step} "
                           f"(layers {list(self.layers)}, steps {list(self.steps)})") from None

    def nearest_step(self, sigma: float, layer: str | None = None, by: str = "sigma") -> int:
        """The captured step whose sigma (or timestep, `by="timestep"`) is nearest to `sigma`, among the
        steps present for `layer` (all steps when None)."""
        steps = sorted({s for (name, s) in self.tensors if layer is None or name == layer})
        if not steps:
            raise KeyError(self._unknown(layer))
        ref = self.sigmas if by == "sigma" else self.timesteps
        return min(steps, key=lambda s: (abs(ref[s] - float(sigma)), s))

    def subset(self, layers) -> "MotionFeatures":
        """A new MotionFeatures sharing the tensors of `layers` (no copy)."""
        layers = list(layers)
        if not layers:
            raise ValueError("MotionFeatures.subset: empty layer selection")
        for layer in layers:
            if layer not in self.layers:
                raise ValueError(self._unknown(layer))
        keep = {k: v for k, v in self.tensors.items() if k[0] in layers}
        return MotionFeatures(keep, self.adapter, dict(self.fingerprint), self.latent_shape, self.sigmas,
                              self.timesteps, self.source, dict(self.extra))

    def validate(self, name: str = "features") -> "MotionFeatures":
        """Raise ValueError if any tensor holds NaN/Inf. Returns self."""
        for (layer, step), t in self.tensors.items():
            if not torch.isfinite(t).all():
                raise ValueError(f"{name}: tensor {layer}/{step:04d} contains NaN or Inf values; recapture the "
                                 f"features (a diverged model or fp16 overflow produces this)")
        return self

    def _unknown(self, layer) -> str:
        return f"unknown layer {layer!r}: these features hold {list(self.layers)}"

    # ---- file format ---------------------------------------------------------------------------------------
    def metadata(self) -> dict:
        return {
            "adapter": self.adapter, "family": self.family, "fingerprint": self.fingerprint,
            "latent_shape": list(self.latent_shape), "sigmas": list(self.sigmas), "timesteps": list(self.timesteps),
            "layers": list(self.layers), "grids": {layer: list(self.grid(layer)) for layer in self.layers},
            "source": self.source, "extra": self.extra,
        }

    def save(self, path, overwrite: bool = True) -> Path:
        """Write ONE safetensors file atomically: a hidden temp file in the same folder, then `os.replace`
        (or, with `overwrite=False`, a hard link that fails with FileExistsError if `path` exists). The temp
        file is removed on any exception, Ctrl-C included. Returns the path."""
        from safetensors.torch import save_file

        self.validate(str(path))
        path = Path(path)
        if not overwrite and path.exists():
            raise FileExistsError(f"MotionFeatures.save: {path} exists (pass overwrite=True to replace it)")
        path.parent.mkdir(parents=True, exist_ok=True)
        named = {f"{layer}/{step:04d}": t.detach().to("cpu").contiguous() for (layer, step), t in self.tensors.items()}
        meta = {_FORMAT_KEY: FORMAT_VERSION, _META_KEY: json.dumps(self.metadata())}
        fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            save_file(named, tmp, metadata=meta)
            if overwrite:
                os.replace(tmp, path)
            else:
                os.link(tmp, path)  # atomic and never clobbers: FileExistsError if another save got there first
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path) -> "MotionFeatures":
        """Read a file written by `save`. Raises FileNotFoundError / ValueError naming the file."""
        from moaw_core.files import read_safetensors

        path = Path(path)
        _, meta = read_safetensors(path, "MotionFeatures.load", tensors=False)
        if meta.get(_FORMAT_KEY) is None or _META_KEY not in meta:
            raise ValueError(f"{path} is a safetensors file but not a Moaw feature cache "
                             f"(no '{_FORMAT_KEY}' metadata)")
        if meta[_FORMAT_KEY] != FORMAT_VERSION:
            raise ValueError(f"{path}: feature format version {meta[_FORMAT_KEY]!r:.40}, this version "
                             f"reads {FORMAT_VERSION!r}")
        sd, _ = read_safetensors(path, "MotionFeatures.load")
        tensors = {_parse_key(path, key): value for key, value in sd.items()}
        m = _parse_meta(path, meta[_META_KEY])
        try:
            feats = cls(tensors, m["adapter"], m["fingerprint"], tuple(m["latent_shape"]), tuple(m["sigmas"]),
                        tuple(m.get("timesteps") or ()), str(m.get("source", "")), dict(m.get("extra") or {}))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: damaged feature cache: {err}") from err
        return feats.validate(str(path))


def _parse_key(path, key: str) -> tuple[str, int]:
    layer, _, step = key.rpartition("/")
    if not layer or not step.isdigit():
        raise ValueError(f"{path}: damaged feature cache: tensor name {key[:60]!r} is not '<layer>/<step>'")
    return layer, int(step)


def _parse_meta(path, text: str) -> dict:
    """The `moaw_meta` JSON of a feature file, with the fields `load` needs checked (ValueError names the file)."""
    try:
        m = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: damaged feature metadata ('{_META_KEY}' is not valid JSON: {err.msg} at "
                         f"character {err.pos})") from None
    if not isinstance(m, dict):
        raise ValueError(f"{path}: damaged feature metadata ('{_META_KEY}' must be a JSON object, got "
                         f"{type(m).__name__})")
    expected = {"adapter": str, "fingerprint": dict, "latent_shape": list, "sigmas": list}
    for key, kind in expected.items():
        if not isinstance(m.get(key), kind):
            raise ValueError(f"{path}: damaged feature metadata: '{key}' must be a {kind.__name__}, got "
                             f"{type(m.get(key)).__name__}")
    numbers = m["sigmas"] + list(m.get("timesteps") or [])
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers):
        raise ValueError(f"{path}: damaged feature metadata: sigmas/timesteps must be finite numbers")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in m["latent_shape"]):
        raise ValueError(f"{path}: damaged feature metadata: latent_shape must be positive integers, got "
                         f"{str(m['latent_shape'])[:80]}")
    return m


def store_tensor(t: torch.Tensor, dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """Detach `t` to a compact, standalone CPU tensor of `dtype` (never a view into a larger storage)."""
    out = t.detach().to(device="cpu", dtype=dtype)
    if out.data_ptr() == t.data_ptr() or out.untyped_storage().nbytes() != out.numel() * out.element_size():
        out = out.clone(memory_format=torch.contiguous_format)
    return out.contiguous()
