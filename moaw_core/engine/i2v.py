"""Image-to-video conditioning of a Wan generator: one builder shared by training, the CLI and ComfyUI.

Layout (the Wan 2.2 14B I2V layout, which ComfyUI detects natively as a Wan model with extra input
channels and no `img_emb`): the patch embedding takes

    cat([noisy latent (C) | mask (4) | condition latents (C)])     in_dim = 2C + 4

on channels. ComfyUI's `WAN21.concat_cond` builds exactly this from a conditioning's
`concat_latent_image` (VAE space; `process_latent_in` maps it to model space like any latent) and
`concat_mask` (ComfyUI convention: 0 on the given frames, 1 elsewhere; it flips it and repeats it to 4
channels), so the model sees mask = 1 on the given frame.

Condition frames (`fill`): "repeat" (default) fills every frame of the condition video with the given
image, as Stable Video Diffusion (the Moaw paper's base) concatenates its image latent to every frame;
"gray" puts the image at frame 0 and mid-gray elsewhere, as `WanImageToVideo` does. The condition is
built in PIXELS (`condition_pixels`) and encoded by the model's VAE / codec, so ComfyUI (VAEEncode of the
same pixels) and this library agree. The codec has no temporal compression: latent frame t is frame t.

`widen_for_i2v` turns an unconditional generator into an I2V one whose extra input channels start at zero
(so it starts as the unconditional generator). `I2VLayout` is recorded in the model file (`moaw.i2v`).
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass

import torch
from torch import nn

from moaw_core.engine.backbones import family_of, widen_in

MASK_CHANNELS = 4
FILLS = ("repeat", "gray")
GRAY = 0.5


@dataclass(frozen=True)
class I2VLayout:
    """Channel layout of an I2V generator's input: [noisy C | mask 4 | condition C]; `fill` of the condition."""

    latent_channels: int
    fill: str = "repeat"
    mask_channels: int = MASK_CHANNELS
    given_frames: int = 1

    def __post_init__(self) -> None:
        if self.fill not in FILLS:
            raise ValueError(f"fill: expected one of {FILLS}, got {self.fill!r}")
        if self.latent_channels < 1 or self.given_frames < 1:
            raise ValueError(f"I2VLayout: latent_channels and given_frames must be >= 1, got "
                             f"{self.latent_channels}, {self.given_frames}")

    @property
    def in_channels(self) -> int:
        return 2 * self.latent_channels + self.mask_channels

    @property
    def condition_channels(self) -> int:
        return self.mask_channels + self.latent_channels

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "I2VLayout":
        return cls(**json.loads(text))


def condition_pixels(image: torch.Tensor, frames: int, fill: str = "repeat") -> torch.Tensor:
    """The condition video in pixels: image [H,W,3] (or [1,H,W,3]) in [0,1] -> [frames,H,W,3] (module docstring)."""
    if isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[0] >= 1:
        image = image[0]
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[-1] != 3:
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image: expected [H,W,3] in [0,1], got {got}")
    if not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames: expected an int >= 1, got {frames!r}")
    if fill not in FILLS:
        raise ValueError(f"fill: expected one of {FILLS}, got {fill!r}")
    image = image.float()
    if fill == "repeat":
        return image[None].expand(frames, *image.shape).clone()
    out = torch.full((frames, *image.shape), GRAY, dtype=image.dtype)
    out[0] = image
    return out


def given_mask(frames: int, given: int = 1) -> torch.Tensor:
    """[1,1,frames,1,1]: 1 on the given frames, 0 elsewhere (the model's convention; ComfyUI stores 1 - this)."""
    m = torch.zeros(1, 1, frames, 1, 1)
    m[:, :, :given] = 1.0
    return m


def condition_input(cond_latents: torch.Tensor, mask: torch.Tensor, layout: I2VLayout) -> torch.Tensor:
    """cat([mask x4, condition latents]): the extra input channels. cond_latents [B,C,T,h,w] (model space),
    mask broadcastable to [B,1,T,h,w]. Returns [B, 4 + C, T, h, w]."""
    if cond_latents.ndim != 5 or cond_latents.shape[1] != layout.latent_channels:
        raise ValueError(f"cond_latents: expected [B,{layout.latent_channels},T,h,w], got {tuple(cond_latents.shape)}")
    B, _, T, h, w = cond_latents.shape
    m = mask.to(cond_latents.device, cond_latents.dtype).expand(B, 1, T, h, w)
    return torch.cat([m.expand(B, layout.mask_channels, T, h, w), cond_latents], 1)


def condition_from_latents(video_latents: torch.Tensor, layout: I2VLayout,
                           gray_latent: torch.Tensor | None = None) -> torch.Tensor:
    """Training shortcut for a per-frame codec: the condition of a clip from its own latents [B,C,T,h,w]
    (frame-0 latent repeated, or frame 0 then `gray_latent` [C,h,w]). Equal to encoding `condition_pixels`
    of frame 0 with a codec that encodes frames independently. Returns [B, 4 + C, T, h, w]."""
    B, C, T, h, w = video_latents.shape
    g = layout.given_frames
    first = video_latents[:, :, :g]
    if layout.fill == "repeat":
        rest = first[:, :, -1:].expand(B, C, T - g, h, w)
    else:
        if gray_latent is None:
            raise ValueError("gray_latent: required for fill 'gray', got None")
        rest = gray_latent.to(video_latents)[None, :, None].expand(B, C, T - g, h, w)
    return condition_input(torch.cat([first, rest], 2), given_mask(T, g), layout)


def layout_of(backbone: nn.Module, meta: dict | None = None) -> I2VLayout | None:
    """The I2V layout of a diffusers Wan backbone (from its file's `moaw.i2v`, else its channel counts), or None
    for an unconditional generator."""
    if meta and meta.get("moaw.i2v"):
        return I2VLayout.from_json(meta["moaw.i2v"])
    cin, cout = backbone.config.in_channels, backbone.config.out_channels
    if cin == 2 * cout + MASK_CHANNELS:
        return I2VLayout(cout)
    return None


def widen_for_i2v(generator: nn.Module, fill: str = "repeat") -> tuple[nn.Module, I2VLayout]:
    """A copy of an unconditional Wan generator (in = out = C) with in_dim 2C + 4, the new channels' weights
    zero: at initialisation it computes exactly what the generator computes. `generator` is not modified."""
    if family_of(generator).name != "wan":
        raise TypeError(f"generator: expected a diffusers WanTransformer3DModel, got {type(generator).__name__}")
    c_in, c_out = generator.config.in_channels, generator.config.out_channels
    if c_in != c_out:
        raise ValueError(f"generator: expected an unconditional generator (in_channels == out_channels), got "
                         f"{c_in} -> {c_out}")
    layout = I2VLayout(c_out, fill)
    model = copy.deepcopy(generator)
    model.patch_embedding = widen_in(model.patch_embedding, layout.in_channels, offset=0)
    model.register_to_config(in_channels=layout.in_channels)
    return model, layout


def tracker_embedding(patch_embedding: nn.Conv3d, layout: I2VLayout, track_channels: int,
                      proj_init: str = "video") -> nn.Conv3d:
    """The tracker's input projection from an I2V generator's: input [noisy tracks (track_channels) | video (C)].

    The source video takes the place of the condition latents (the generator's condition weights read it);
    the mask channels are set to 1 everywhere ("every frame is given") and folded into the bias; the
    generator's noisy-latent weights go to the first C track channels with proj_init "track", else the track
    channels start at zero (a one-step tracker feeds them zeros anyway).
    """
    if proj_init not in ("video", "track"):
        raise ValueError(f"proj_init: expected 'video' or 'track', got {proj_init!r}")
    c, m = layout.latent_channels, layout.mask_channels
    w = patch_embedding.weight
    if w.shape[1] != layout.in_channels:
        raise ValueError(f"patch_embedding: expected {layout.in_channels} input channels, got {w.shape[1]}")
    new = nn.Conv3d(track_channels + c, w.shape[0], patch_embedding.kernel_size, patch_embedding.stride,
                    patch_embedding.padding, bias=True)
    with torch.no_grad():
        new.weight.zero_()
        if proj_init == "track":
            n = min(c, track_channels)
            new.weight[:, :n] = w[:, :n]
        new.weight[:, track_channels:] = w[:, c + m:]
        bias = patch_embedding.bias if patch_embedding.bias is not None else torch.zeros(w.shape[0])
        new.bias.copy_(bias + w[:, c:c + m].sum(dim=(1, 2, 3, 4)))
    return new.to(w.dtype)


def resize_image(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """image [H,W,3] (or [1,H,W,3]) in [0,1] -> [height,width,3]: scaled to cover, centre-cropped (bilinear,
    antialiased). The CLI and the ComfyUI node resize a user's image the same way."""
    if isinstance(image, torch.Tensor) and image.ndim == 4:
        image = image[0]
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[-1] < 3:
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image: expected [H,W,3] in [0,1], got {got}")
    if height < 1 or width < 1:
        raise ValueError(f"height/width: expected >= 1, got {height}x{width}")
    H, W = image.shape[:2]
    if (H, W) == (height, width):
        return image[..., :3].float()
    scale = max(height / H, width / W)
    h, w = max(height, round(H * scale)), max(width, round(W * scale))
    x = image[..., :3].float().permute(2, 0, 1)[None]
    x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    y0, x0 = (h - height) // 2, (w - width) // 2
    return x[0, :, y0:y0 + height, x0:x0 + width].permute(1, 2, 0).clamp(0, 1).contiguous()


def image_condition(encode, image: torch.Tensor, frames: int, layout: I2VLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """The I2V inputs of one image, through `encode` (pixels [T,H,W,3] -> model-space latents [1,C,T,h,w]).

    Returns (condition [1, 4 + C, T, h, w] for the extra input channels, condition latents [1, C, T, h, w],
    whose frame 0 is the given image's latent: what `generate(keep=...)` holds fixed)."""
    lat = encode(condition_pixels(image, frames, layout.fill))
    if lat.ndim != 5 or lat.shape[1] != layout.latent_channels or lat.shape[2] != frames:
        raise ValueError(f"encode: expected latents [1,{layout.latent_channels},{frames},h,w] (no temporal "
                         f"compression), got {tuple(lat.shape)}")
    return condition_input(lat, given_mask(frames, layout.given_frames), layout), lat


def comfy_inputs(encode, image: torch.Tensor, width: int, height: int, length: int, fill: str = "repeat",
                 keep_first_frame: bool = True, batch_size: int = 1) -> dict:
    """What ComfyUI needs to run an I2V generator on `image` (the `MoawImageToVideo` node).

    encode: the VAE's encode (pixels [T,H,W,3] -> VAE-space latents [1,C,T,h,w]); ComfyUI maps VAE space to
    model space itself (`process_latent_in`, also on `concat_latent_image`).
    Returns {"concat_latent_image": [1,C,T,h,w] (VAE space), "concat_mask": [1,1,T,h,w] (ComfyUI convention:
    0 on the given frame), "samples": [B,C,T,h,w], and with keep_first_frame "noise_mask": [1,1,T,h,w] (0 on
    the given frame: ComfyUI's samplers hold it at the image's latent, as `generate(keep=...)` does)}.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    pixels = condition_pixels(resize_image(image, height, width), length, fill)
    lat = encode(pixels)
    if lat.ndim != 5 or lat.shape[2] != length:
        raise ValueError(f"vae: expected a video latent [1,C,{length},h,w] (no temporal compression, like the Moaw "
                         f"codec), got {tuple(lat.shape)}; for Wan's own VAE use WanImageToVideo")
    keep = 1.0 - given_mask(length).expand(1, 1, length, *lat.shape[-2:])
    out = {"concat_latent_image": lat, "concat_mask": keep.clone(),
           "samples": (lat if keep_first_frame else torch.zeros_like(lat)).repeat(batch_size, 1, 1, 1, 1)}
    if keep_first_frame:
        out["noise_mask"] = keep.clone()
    return out
