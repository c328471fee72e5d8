"""Diffusers video backbones as the library uses them: per-family facts (`FAMILIES`: which modules are the input /
output projections and how each is called with a null condition), `build_wan` (small Wan configs for the demo and
tests), `null_condition`, `backbone_forward` (one call convention for every family) and the projection surgery
(`widen_in`, `tile_out`) that the tracker (`moaw_core.tracking.tracker`) and the I2V generator
(`moaw_core.engine.i2v`) are made with.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Family:
    """Facts about one diffusers backbone class.

    in_proj / out_proj: dotted module paths; in_key / out_key: the config keys of their channel counts;
    out_layout: how output features are ordered ("channel_last": (..patch.., C) as Wan;
    "channel_first": (C, ..patch..) as CogVideoX's Linear and any conv).
    """

    name: str
    class_name: str
    in_proj: str
    out_proj: str
    in_key: str
    out_key: str
    out_layout: str


FAMILIES = {
    "wan": Family("wan", "WanTransformer3DModel", "patch_embedding", "proj_out", "in_channels", "out_channels",
                  "channel_last"),
    "svd": Family("svd", "UNetSpatioTemporalConditionModel", "conv_in", "conv_out", "in_channels", "out_channels",
                  "channel_first"),
    "cogvideox": Family("cogvideox", "CogVideoXTransformer3DModel", "patch_embed.proj", "proj_out", "in_channels",
                        "out_channels", "channel_first"),
}


def family_of(model: nn.Module) -> Family:
    name = type(model).__name__
    for fam in FAMILIES.values():
        if fam.class_name == name:
            return fam
    raise TypeError(f"model: expected one of {[f.class_name for f in FAMILIES.values()]}, got {name}")


def build_wan(dim: int = 128, num_layers: int = 6, ffn_dim: int = 256, in_channels: int = 16,
              out_channels: int = 16, text_dim: int = 4096, seed: int | None = 0) -> nn.Module:
    """A small diffusers WanTransformer3DModel; head dim 128 and freq_dim 256 as ComfyUI's detection assumes."""
    from diffusers import WanTransformer3DModel

    if dim % 128:
        raise ValueError(f"dim: expected a multiple of 128 (Wan head dim), got {dim}")
    if seed is not None:
        torch.manual_seed(seed)
    return WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=dim // 128, attention_head_dim=128,
                                 in_channels=in_channels, out_channels=out_channels, text_dim=text_dim,
                                 freq_dim=256, ffn_dim=ffn_dim, num_layers=num_layers)


def null_condition(model: nn.Module, batch: int, device, dtype) -> dict:
    """The unconditional inputs each family needs besides (x, t): all zeros."""
    cfg, fam = model.config, family_of(model)
    if fam.name == "wan":
        return {"encoder_hidden_states": torch.zeros(batch, 1, cfg.text_dim, device=device, dtype=dtype)}
    if fam.name == "svd":
        n_ids = cfg.projection_class_embeddings_input_dim // cfg.addition_time_embed_dim
        ca = cfg.cross_attention_dim if isinstance(cfg.cross_attention_dim, int) else cfg.cross_attention_dim[0]
        return {"encoder_hidden_states": torch.zeros(batch, 1, ca, device=device, dtype=dtype),
                "added_time_ids": torch.zeros(batch, n_ids, device=device, dtype=dtype)}
    return {"encoder_hidden_states": torch.zeros(batch, cfg.max_text_seq_length, cfg.text_embed_dim,
                                                 device=device, dtype=dtype)}


def backbone_forward(model: nn.Module, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
    """Null-condition forward of any family. x [B,C,T,H,W]; timestep [B] in [0,1000]. Returns [B,C',T,H,W]."""
    fam = family_of(model)
    cond = null_condition(model, x.shape[0], x.device, x.dtype)
    if fam.name == "wan":
        return model(x, timestep, return_dict=False, **cond)[0]
    xt = x.transpose(1, 2)  # SVD and CogVideoX take [B,T,C,H,W]
    if fam.name == "svd":
        out = model(xt, timestep, return_dict=False, **cond)[0]
    else:
        out = model(xt, timestep=timestep, return_dict=False, **cond)[0]
    return out.transpose(1, 2)


class SingleTokenCrossAttention:
    """Attention processor for a Wan cross-attention whose context is ONE token (the null text these models run
    with, `null_condition`): a softmax over one key is 1, so every query receives that token's value, i.e. the output
    is to_out(to_v(context)) for all of them; the query projection, its norm and the attention are skipped. Exact
    (gradients too: the attention logits' gradient is zero there), about 14 % of a tiny tracker's CPU time. Any
    other call (longer or image context, fused projections, a mask) goes to the processor it replaced."""

    def __init__(self, fallback) -> None:
        self.fallback = fallback

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        if encoder_hidden_states is None or encoder_hidden_states.shape[1] != 1 or attention_mask is not None \
                or getattr(attn, "add_k_proj", None) is not None or getattr(attn, "fused_projections", False):
            return self.fallback(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)
        out = attn.to_out[1](attn.to_out[0](attn.to_v(encoder_hidden_states).type_as(hidden_states)))
        return out.expand(-1, hidden_states.shape[1], -1)


def single_token_cross_attention(model: nn.Module) -> nn.Module:
    """Installs `SingleTokenCrossAttention` on every cross-attention of a diffusers Wan model (in place; other
    families unchanged). Returns the model."""
    if family_of(model).name != "wan":
        return model
    for block in model.blocks:
        if not isinstance(block.attn2.processor, SingleTokenCrossAttention):
            block.attn2.set_processor(SingleTokenCrossAttention(block.attn2.processor))
    return model


def widen_in(old: nn.Module, new_in: int, offset: int = 0) -> nn.Module:
    """Copy of conv/linear `old` with new_in input channels: old weights at channels [offset, offset + old_in),
    zeros elsewhere."""
    if isinstance(old, nn.Linear):
        new = nn.Linear(new_in, old.out_features, bias=old.bias is not None)
    else:
        new = type(old)(new_in, old.out_channels, old.kernel_size, old.stride, old.padding,
                        bias=old.bias is not None)
    with torch.no_grad():
        new.weight.zero_()
        n = min(new_in - offset, old.weight.shape[1])
        new.weight[:, offset:offset + n] = old.weight[:, :n]
        if old.bias is not None:
            new.bias.copy_(old.bias)
    return new.to(old.weight.dtype)


def tile_out(old: nn.Module, old_c: int, new_c: int, layout: str) -> nn.Module:
    """Copy of output conv/linear `old` producing new_c channels; channel c copies old channel c % old_c."""
    rows = old.weight.shape[0]
    per = rows // old_c  # patch positions per channel (1 for a conv)
    idx = torch.arange(new_c) % old_c
    if layout == "channel_last":  # feature = p * C + c
        sel = (torch.arange(per)[:, None] * old_c + idx[None]).reshape(-1)
    else:  # feature = c * per + p
        sel = (idx[:, None] * per + torch.arange(per)[None]).reshape(-1)
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, per * new_c, bias=old.bias is not None)
    else:
        new = type(old)(old.in_channels, per * new_c, old.kernel_size, old.stride, old.padding,
                        bias=old.bias is not None)
    with torch.no_grad():
        new.weight.copy_(old.weight[sel])
        if old.bias is not None:
            new.bias.copy_(old.bias[sel])
    return new.to(old.weight.dtype)
