"""The Moaw model file: ONE safetensors file that ComfyUI (`LoadMoawTracker`) and this library read.

Tensors: the diffusion-model state dict in the base model's own key format. For Wan that is the
original Wan format ComfyUI loads natively (`patch_embedding`, `blocks.N.self_attn.q`, `head.head`,
`head.modulation`; see `moaw_core.engine.convert`); other families keep diffusers keys (`moaw.key_format`).
String metadata (all values str; JSON where structured):
  moaw.format_version   "1"
  moaw.kind             "tracker" | "generator"
  moaw.base_architecture e.g. "wan2.1" (ComfyUI image_model name) or "svd" / "cogvideox"
  moaw.key_format       "wan-original" | "diffusers"
  moaw.config           JSON diffusers config of the backbone (to rebuild it without guessing)
  moaw.codec            codec id of the latents, e.g. "moaw.patch_pca.v1"
  moaw.track_encoding   JSON (tracker): max_disp, codec, depth_range, channel layout
  moaw.source_input     JSON (tracker): {"mode": "concat", "track_latents": [0, Ct], "video_latents": [Ct, Ct+Cv]}
  moaw.schedule         JSON: parameterisation ("flow", ComfyUI CONST), loss, shift, default steps
  moaw.condition        how the condition input is fed ("zeros": text context zeros [B,1,text_dim])
  moaw.i2v              JSON (image-to-video generator): `moaw_core.engine.i2v.I2VLayout`
  moaw.train_command, moaw.step
  moaw.fingerprint      JSON `moaw_core.engine.adapters` fingerprint of the blocks (when an adapter exists)
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from moaw_core.tracking.codecs import TrackEncoding
from moaw_core.files import read_safetensors
from moaw_core.engine.convert import diffusers_to_wan, wan_to_diffusers
from moaw_core.tracking.tracker import MoawTracker, family_of

FORMAT_VERSION = "1"
KINDS = ("tracker", "generator")
_ARCH = {"wan": "wan2.1", "svd": "svd", "cogvideox": "cogvideox"}
_CLASSES = {"wan2.1": "WanTransformer3DModel", "svd": "UNetSpatioTemporalConditionModel",
            "cogvideox": "CogVideoXTransformer3DModel"}


def save_model(path: str | Path, backbone: torch.nn.Module, kind: str, codec_id: str,
               track_encoding: TrackEncoding | None = None, video_channels: int | None = None,
               schedule: dict | None = None, train_command: str = "", step: int = 0,
               dtype: torch.dtype | None = None, extra_meta: dict[str, str] | None = None) -> Path:
    """Write `backbone` (a diffusers model) as a Moaw model file.

    Args:
        kind: "tracker" (then track_encoding and video_channels are required) or "generator".
        schedule: e.g. {"parameterization": "flow", "loss": "l1", "shift": 1.0, "steps": 1}.
        dtype: store floating-point tensors in this dtype (None: as they are).
        extra_meta: more `moaw.*` string metadata (e.g. `moaw.i2v`, the image-to-video layout).
    Returns:
        the path written.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    fam = family_of(backbone)
    sd = {k: v.detach().to("cpu", dtype=dtype if dtype is not None and v.is_floating_point() else v.dtype).contiguous()
          for k, v in backbone.state_dict().items()}
    key_format = "diffusers"
    if fam.name == "wan":
        sd, key_format = diffusers_to_wan(sd), "wan-original"
    config = {k: v for k, v in dict(backbone.config).items() if not k.startswith("_")}
    meta = {"moaw.format_version": FORMAT_VERSION, "moaw.kind": kind, "moaw.base_architecture": _ARCH[fam.name],
            "moaw.key_format": key_format, "moaw.config": json.dumps(config, default=list),
            "moaw.codec": codec_id, "moaw.schedule": json.dumps(schedule or {"parameterization": "flow"}),
            "moaw.condition": "zeros", "moaw.train_command": train_command, "moaw.step": str(int(step))}
    for k, v in (extra_meta or {}).items():
        if not k.startswith("moaw.") or not isinstance(v, str):
            raise ValueError(f"extra_meta: expected 'moaw.*' keys with str values, got {k!r}: {type(v).__name__}")
        meta[k] = v
    fingerprint = _fingerprint(backbone)
    if fingerprint:
        meta["moaw.fingerprint"] = json.dumps(fingerprint)
    if kind == "tracker":
        if track_encoding is None or video_channels is None:
            raise ValueError("track_encoding/video_channels: required for kind='tracker', got None")
        ct = track_encoding.track_channels
        meta["moaw.track_encoding"] = track_encoding.to_json()
        meta["moaw.source_input"] = json.dumps({"mode": "concat", "track_latents": [0, ct],
                                                "video_latents": [ct, ct + video_channels]})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path), metadata=meta)
    return path


def _fingerprint(backbone: torch.nn.Module) -> dict | None:
    try:
        from moaw_core.engine.adapters import detect
        return detect(backbone).fingerprint(backbone)
    except (ImportError, TypeError, ValueError):
        return None


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read and validate a Moaw model file. Returns (state dict as stored, metadata).

    Raises FileNotFoundError (missing), ValueError (not safetensors / truncated / not a Moaw file /
    unknown version).
    """
    path = Path(path)
    sd, meta = read_safetensors(path, "checkpoint")
    if "moaw.format_version" not in meta:
        raise ValueError(f"checkpoint: {path} is not a Moaw model file (no moaw.format_version metadata; "
                         f"a plain diffusion model must be converted/trained with `python -m moaw_core train`)")
    if meta["moaw.format_version"] != FORMAT_VERSION:
        raise ValueError(f"checkpoint: {path} has moaw.format_version {meta['moaw.format_version']!r}, "
                         f"this library reads {FORMAT_VERSION!r}")
    if meta.get("moaw.kind") not in KINDS or meta.get("moaw.base_architecture") not in _CLASSES:
        raise ValueError(f"checkpoint: {path} has unknown moaw.kind {meta.get('moaw.kind')!r} or "
                         f"moaw.base_architecture {meta.get('moaw.base_architecture')!r}")
    return sd, meta


def average_model_files(files: list[str | Path], out: str | Path, step: int | None = None, note: str = "") -> Path:
    """Uniform mean of the weights of several exports of one training run (fp32 sum, stored in the first file's
    dtypes), with the first file's metadata; `step` replaces moaw.step, `note` goes to moaw.averaged_from (with the
    file names). The files must be Moaw model files of one kind, architecture and tensor layout."""
    if len(files) < 1:
        raise ValueError("files: expected at least one model file to average")
    acc: dict[str, torch.Tensor] = {}
    first_meta, dtypes = None, {}
    for f in files:
        sd, meta = read_checkpoint(f)
        if first_meta is None:
            first_meta, dtypes = meta, {k: v.dtype for k, v in sd.items()}
            shapes = {k: tuple(v.shape) for k, v in sd.items()}
        elif meta.get("moaw.kind") != first_meta.get("moaw.kind") or {k: tuple(v.shape) for k, v in sd.items()} != shapes:
            raise ValueError(f"files: {f} is not the same kind of model with the same tensors as {files[0]}")
        for k, v in sd.items():
            acc[k] = acc[k] + v.float() if k in acc else v.float().clone()
    meta = dict(first_meta)
    if step is not None:
        meta["moaw.step"] = str(int(step))
    meta["moaw.averaged_from"] = (note + " " if note else "") + "mean of: " + " ".join(Path(f).name for f in files)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: (v / len(files)).to(dtypes[k]).contiguous() for k, v in acc.items()}, str(out), metadata=meta)
    return out


def check_finite_weights(sd: dict[str, torch.Tensor], path) -> None:
    """ValueError naming the tensors that hold NaN/Inf (a diverged training run saves such files)."""
    bad = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(f"checkpoint: {path} has NaN/Inf weights in {len(bad)} tensor(s) ({', '.join(bad[:3])}"
                         f"{', ...' if len(bad) > 3 else ''}); the training run diverged: use an earlier checkpoint")


def json_meta(meta: dict[str, str], key: str, path, required: bool = True) -> dict:
    """The JSON object stored under metadata `key`; ValueError naming the file and key when absent or damaged."""
    text = meta.get(key)
    if text is None:
        if required:
            raise ValueError(f"checkpoint: {path} lacks {key} metadata (damaged, or not written by this library)")
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"checkpoint: {path}: {key} metadata is not valid JSON ({err.msg} at character "
                         f"{err.pos})") from None
    if not isinstance(value, dict):
        raise ValueError(f"checkpoint: {path}: {key} metadata must be a JSON object, got {type(value).__name__}")
    return value


def _channels(pair) -> bool:
    return (isinstance(pair, list) and len(pair) == 2 and all(isinstance(c, int) and not isinstance(c, bool)
                                                              for c in pair))


def tracker_meta(meta: dict[str, str], path) -> dict:
    """Parse and check a tracker's moaw.* metadata. Returns {"config", "schedule", "track_channels",
    "video_channels", "encoding"}; ValueError naming the file and key for anything damaged."""
    config = json_meta(meta, "moaw.config", path)
    src = json_meta(meta, "moaw.source_input", path)
    schedule = json_meta(meta, "moaw.schedule", path, required=False)
    t, v = src.get("track_latents"), src.get("video_latents")
    if src.get("mode") != "concat" or not (_channels(t) and _channels(v) and t[0] == 0 < t[1] == v[0] < v[1]):
        raise ValueError(f"checkpoint: {path}: moaw.source_input must be {{'mode': 'concat', 'track_latents': "
                         f"[0, Ct], 'video_latents': [Ct, Ct+Cv]}}, got {json.dumps(src)[:120]}")
    if schedule.get("parameterization", "flow") != "flow":
        raise ValueError(f"checkpoint: {path}: moaw.schedule parameterization "
                         f"{str(schedule.get('parameterization'))[:40]!r} is not supported (flow only)")
    shift, steps = schedule.get("shift", 1.0), schedule.get("steps", 1)
    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not 0 < shift < float("inf"):
        raise ValueError(f"checkpoint: {path}: moaw.schedule shift must be a positive number, got {shift!r:.40}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"checkpoint: {path}: moaw.schedule steps must be an integer >= 1, got {steps!r:.40}")
    if schedule.get("init_noise", "gaussian") not in ("gaussian", "zeros"):
        raise ValueError(f"checkpoint: {path}: moaw.schedule init_noise must be 'gaussian' or 'zeros'")
    try:
        encoding = TrackEncoding.from_json(meta["moaw.track_encoding"])
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise ValueError(f"checkpoint: {path}: moaw.track_encoding metadata is missing or damaged "
                         f"({type(err).__name__}: {str(err)[:80]})") from None
    if encoding.track_channels != t[1]:
        raise ValueError(f"checkpoint: {path}: moaw.track_encoding has {encoding.track_channels} track channels "
                         f"but moaw.source_input says {t[1]}")
    return {"config": config, "schedule": schedule, "track_channels": t[1], "video_channels": v[1] - v[0],
            "encoding": encoding}


def load_backbone(path: str | Path, kind: str | None = None) -> tuple[torch.nn.Module, dict[str, str]]:
    """Rebuild the diffusers backbone stored in a Moaw model file. Returns (model in eval mode, metadata)."""
    import diffusers

    sd, meta = read_checkpoint(path)
    if kind is not None and meta["moaw.kind"] != kind:
        raise ValueError(f"checkpoint: expected a {kind} file, {path} is a {meta['moaw.kind']}")
    if kind == "tracker":
        tracker_meta(meta, path)
    check_finite_weights(sd, path)
    config = json_meta(meta, "moaw.config", path)
    if meta.get("moaw.key_format") == "wan-original":
        sd = wan_to_diffusers(sd)
    cls = getattr(diffusers, _CLASSES[meta["moaw.base_architecture"]])
    try:
        model = cls.from_config(config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint: {path}: moaw.config does not describe a {cls.__name__} "
                         f"({str(err)[:120]})") from None
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(f"checkpoint: {path} does not match its moaw.config (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
    return model.eval(), meta


def load_tracker(path: str | Path) -> tuple[MoawTracker, TrackEncoding, dict[str, str]]:
    """Returns (MoawTracker in eval mode, its TrackEncoding, metadata)."""
    model, meta = load_backbone(path, "tracker")
    info = tracker_meta(meta, path)
    enc = info["encoding"]
    return MoawTracker(model, enc.track_channels, info["video_channels"]).eval(), enc, meta


def sampling_defaults(meta: dict[str, str], steps: int | None = None) -> dict:
    """The tracker sampling recorded in a file's moaw.schedule: {"steps", "shift", "init_noise"} (steps
    overridable), as keyword arguments of predict()/predict_tracks(). The one reader of these settings: the CLI
    verbs, `TrackerSource.from_file` and the ComfyUI ExtractMotionFeatures node all use it."""
    sched = json_meta(meta, "moaw.schedule", "this file", required=False)
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps: expected an integer >= 1 (or None for the file's own), got {steps!r}")
    return {"steps": int(steps if steps is not None else sched.get("steps", 1)), "shift": float(sched.get("shift", 1.0)),
            "init_noise": sched.get("init_noise", "gaussian")}
