"""Key mapping between diffusers `WanTransformer3DModel` and the original Wan 2.1 state-dict format.

The original format is what ComfyUI loads natively (`comfy/ldm/wan/model.py`; detection in
`comfy/model_detection.py` reads dim from `head.modulation`, in_dim from `patch_embedding`,
out_dim = head.head.weight.shape[0] // 4, num_heads = dim // 128). Tensors are shared, not copied;
only names change. Shapes are identical in both formats (including the unpatchify order of
`proj_out` / `head.head`, channel-last in both).
"""
from __future__ import annotations

import re

import torch

# (diffusers pattern, native pattern); `{i}` is a block index. Order matters only for readability:
# each key matches exactly one rule.
_BLOCK_RULES: tuple[tuple[str, str], ...] = (
    ("scale_shift_table", "modulation"),
    ("attn1.to_q.", "self_attn.q."), ("attn1.to_k.", "self_attn.k."), ("attn1.to_v.", "self_attn.v."),
    ("attn1.to_out.0.", "self_attn.o."), ("attn1.norm_q.", "self_attn.norm_q."), ("attn1.norm_k.", "self_attn.norm_k."),
    ("attn2.to_q.", "cross_attn.q."), ("attn2.to_k.", "cross_attn.k."), ("attn2.to_v.", "cross_attn.v."),
    ("attn2.to_out.0.", "cross_attn.o."), ("attn2.norm_q.", "cross_attn.norm_q."), ("attn2.norm_k.", "cross_attn.norm_k."),
    ("attn2.add_k_proj.", "cross_attn.k_img."), ("attn2.add_v_proj.", "cross_attn.v_img."),
    ("attn2.norm_added_k.", "cross_attn.norm_k_img."),
    # diffusers' norm2 is the (affine) cross-attention norm, which the original calls norm3.
    ("norm2.", "norm3."),
    ("ffn.net.0.proj.", "ffn.0."), ("ffn.net.2.", "ffn.2."),
)
_TOP_RULES: tuple[tuple[str, str], ...] = (
    ("scale_shift_table", "head.modulation"),
    ("proj_out.", "head.head."),
    ("patch_embedding.", "patch_embedding."),
    ("condition_embedder.time_embedder.linear_1.", "time_embedding.0."),
    ("condition_embedder.time_embedder.linear_2.", "time_embedding.2."),
    ("condition_embedder.time_proj.", "time_projection.1."),
    ("condition_embedder.text_embedder.linear_1.", "text_embedding.0."),
    ("condition_embedder.text_embedder.linear_2.", "text_embedding.2."),
    ("condition_embedder.image_embedder.norm1.", "img_emb.proj.0."),
    ("condition_embedder.image_embedder.ff.net.0.proj.", "img_emb.proj.1."),
    ("condition_embedder.image_embedder.ff.net.2.", "img_emb.proj.3."),
    ("condition_embedder.image_embedder.norm2.", "img_emb.proj.4."),
    ("condition_embedder.image_embedder.pos_embed", "img_emb.emb_pos"),
)
_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(.*)$")


def _rename(key: str, forward: bool) -> str:
    src, dst = (0, 1) if forward else (1, 0)
    m = _BLOCK_RE.match(key)
    rules, rest, prefix = (_BLOCK_RULES, m.group(2), f"blocks.{m.group(1)}.") if m else (_TOP_RULES, key, "")
    for rule in rules:
        if rest.startswith(rule[src]):
            return prefix + rule[dst] + rest[len(rule[src]):]
    # norm1 / norm3 (diffusers) and norm1 / norm2 (native) have no parameters; anything else is foreign.
    fmt = "diffusers WanTransformer3DModel" if forward else "original Wan"
    raise ValueError(f"state dict: key {key!r} is not part of the {fmt} format")


def diffusers_to_wan(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers WanTransformer3DModel state dict -> original Wan (ComfyUI-native) state dict."""
    if "scale_shift_table" not in sd or "proj_out.weight" not in sd:
        raise ValueError("state dict: expected a diffusers WanTransformer3DModel state dict "
                         f"(keys scale_shift_table, proj_out.weight), got keys like {sorted(sd)[:4]}")
    return {_rename(k, True): v for k, v in sd.items()}


def wan_to_diffusers(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original Wan state dict (optionally prefixed `model.diffusion_model.`) -> diffusers names."""
    sd = strip_prefix(sd)
    if "head.modulation" not in sd or "head.head.weight" not in sd:
        raise ValueError("state dict: expected an original-format Wan state dict (keys head.modulation, "
                         f"head.head.weight), got keys like {sorted(sd)[:4]}")
    return {_rename(k, False): v for k, v in sd.items()}


def strip_prefix(sd: dict[str, torch.Tensor], prefix: str = "model.diffusion_model.") -> dict[str, torch.Tensor]:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in sd.items()}


def wan_config_from_native(sd: dict[str, torch.Tensor]) -> dict:
    """diffusers WanTransformer3DModel config kwargs read from an original-format state dict
    (same rules as ComfyUI's detection: head dim 128)."""
    sd = strip_prefix(sd)
    for key in ("head.modulation", "head.head.weight", "patch_embedding.weight", "blocks.0.ffn.0.weight",
                "text_embedding.0.weight", "time_embedding.0.weight"):
        if key not in sd:
            raise ValueError(f"state dict: missing {key!r}; not an original-format Wan model")
    dim = sd["head.modulation"].shape[-1]
    patch = tuple(sd["patch_embedding.weight"].shape[2:])
    out = sd["head.head.weight"].shape[0] // (patch[0] * patch[1] * patch[2])
    num_layers = 1 + max(int(m.group(1)) for k in sd if (m := _BLOCK_RE.match(k)))
    cfg = dict(patch_size=patch, num_attention_heads=dim // 128, attention_head_dim=128,
               in_channels=sd["patch_embedding.weight"].shape[1], out_channels=out,
               text_dim=sd["text_embedding.0.weight"].shape[1], freq_dim=sd["time_embedding.0.weight"].shape[1],
               ffn_dim=sd["blocks.0.ffn.0.weight"].shape[0], num_layers=num_layers)
    if "img_emb.proj.1.weight" in sd:  # i2v
        cfg.update(image_dim=sd["img_emb.proj.1.weight"].shape[1], added_kv_proj_dim=dim)
    return cfg


def native_to_diffusers_model(sd: dict[str, torch.Tensor]):
    """Build a diffusers WanTransformer3DModel from an original-format state dict (strict load)."""
    from diffusers import WanTransformer3DModel

    model = WanTransformer3DModel(**wan_config_from_native(sd))
    missing, unexpected = model.load_state_dict(wan_to_diffusers(sd), strict=False)
    if missing or unexpected:
        raise ValueError(f"state dict: does not match the detected Wan config (missing {missing[:4]}, "
                         f"unexpected {unexpected[:4]})")
    return model
