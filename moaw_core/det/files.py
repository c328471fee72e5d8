"""DeT adapter files: one safetensors file per trained source video (only this module knows the layout).

Tensors: "{layer}/conv_in" [128, C, 3] and "{layer}/conv_out" [C, 128, 3] per block ("block.3/conv_in");
a resumable checkpoint adds the AdamW state as "optim/{param index}/{exp_avg|exp_avg_sq|step}".
String metadata:
  moaw.format_version "1"          moaw.kind "det_adapters"
  moaw.det.settings   JSON {width, family, hidden, kernel, layers}
  moaw.fingerprint    JSON block fingerprint of the base model (family, layer counts, width, blocks hash)
  moaw.det.train      JSON training settings and facts (config, step, seconds, source, tracker)
  moaw.det.optim      JSON AdamW param_groups (checkpoints only)
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

from moaw_core.det.adapter import DeTAdapters
from moaw_core.files import read_safetensors
from moaw_core.det.train import DeTTrainState

FORMAT_VERSION = "1"
KIND = "det_adapters"


@dataclass
class TrainedDeT:
    """What travels on a MOAW_DET socket and what a file holds: the adapters, training facts (config, step,
    seconds, source, losses) and the resumable state (its optimizer is None when the file had none)."""

    adapters: DeTAdapters
    info: dict = field(default_factory=dict)
    state: DeTTrainState = field(default_factory=DeTTrainState)

    def save(self, path, resumable: bool = True) -> Path:
        state = self.state if resumable else DeTTrainState(self.state.step, None, self.state.losses)
        return save_adapters(path, self.adapters, self.info, state)


def _tensors(adapters: DeTAdapters) -> dict[str, torch.Tensor]:
    out = {}
    for name in adapters.layer_names:
        m = adapters.module(name)
        out[f"{name}/conv_in"] = m.conv_in.weight.detach().float().cpu().contiguous()
        out[f"{name}/conv_out"] = m.conv_out.weight.detach().float().cpu().contiguous()
    return out


def save_adapters(path, adapters: DeTAdapters, train_info: dict | None = None,
                  state: DeTTrainState | None = None) -> Path:
    """Write `adapters` (and, for a resumable checkpoint, the optimiser `state`) atomically. Returns the path."""
    if not isinstance(adapters, DeTAdapters):
        raise TypeError(f"adapters: expected DeTAdapters, got {type(adapters).__name__}")
    sd = _tensors(adapters)
    info = dict(train_info or {})
    meta = {"moaw.format_version": FORMAT_VERSION, "moaw.kind": KIND,
            "moaw.det.settings": json.dumps(adapters.settings()),
            "moaw.fingerprint": json.dumps(adapters.fingerprint)}
    if state is not None:
        info["step"] = state.step
        if state.optimizer is not None:
            for i, st in state.optimizer["state"].items():
                for k, v in st.items():
                    sd[f"optim/{i}/{k}"] = torch.as_tensor(v).detach().float().cpu().contiguous()
            meta["moaw.det.optim"] = json.dumps(state.optimizer["param_groups"])
        info["losses"] = [{k: round(v, 6) if isinstance(v, float) else v for k, v in r.items()} for r in state.losses]
    meta["moaw.det.train"] = json.dumps(info, default=str)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(sd, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def read_metadata(path) -> dict[str, str]:
    _, meta = read_safetensors(path, "DeT adapter file", tensors=False)
    if meta.get("moaw.kind") != KIND:
        raise ValueError(f"DeT adapter file: {path} is not a DeT adapter file (moaw.kind="
                         f"{meta.get('moaw.kind')!r}, expected {KIND!r})")
    if meta.get("moaw.format_version") != FORMAT_VERSION:
        raise ValueError(f"DeT adapter file: {path} has format version {meta.get('moaw.format_version')!r}, "
                         f"this library reads {FORMAT_VERSION!r}")
    return meta


def load_adapters(path) -> TrainedDeT:
    """Returns TrainedDeT (adapters, training info, DeTTrainState for resuming; its optimizer is None when the
    file holds no optimiser state). Raises FileNotFoundError / ValueError for missing, foreign or damaged files."""
    meta = read_metadata(path)
    sd, _ = read_safetensors(path, "DeT adapter file")
    s = json.loads(meta["moaw.det.settings"])
    adapters = DeTAdapters(s["width"], s["layers"], s["family"], json.loads(meta.get("moaw.fingerprint", "{}")),
                           s["hidden"], s["kernel"])
    for name in adapters.layer_names:
        m = adapters.module(name)
        for part in ("conv_in", "conv_out"):
            key = f"{name}/{part}"
            w = getattr(m, part).weight
            if key not in sd or tuple(sd[key].shape) != tuple(w.shape):
                raise ValueError(f"DeT adapter file: {path} tensor {key} is missing or has shape "
                                 f"{tuple(sd[key].shape) if key in sd else None}, expected {tuple(w.shape)}")
            with torch.no_grad():
                w.copy_(sd[key])
    info = json.loads(meta.get("moaw.det.train", "{}"))
    state = _state(sd, meta, info)
    info.pop("losses", None)
    return TrainedDeT(adapters.eval(), info, state)


def _state(sd, meta, info) -> DeTTrainState:
    state = DeTTrainState(step=int(info.get("step", 0)), losses=list(info.get("losses", [])))
    if "moaw.det.optim" not in meta:
        return state
    per: dict[int, dict] = {}
    for key, v in sd.items():
        if key.startswith("optim/"):
            _, i, k = key.split("/")
            per.setdefault(int(i), {})[k] = v
    state.optimizer = {"state": per,
                       "param_groups": json.loads(meta["moaw.det.optim"])}
    return state
