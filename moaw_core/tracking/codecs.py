"""Latent codecs: pixels <-> latents, and dense tracks <-> track latents.

Owns the codec interface (`encode(video) -> latents [B,C,T',H',W']`, `decode(latents) -> video`),
`PatchPCACodec` (the demo codec: a fixed linear map of 4x4x3 pixel patches to 16 channels, fitted by
PCA on synthetic frames, decoder = transpose), `DiffusersVAECodec` (wraps a user's diffusers video
VAE) and `TrackCodec` (tracks -> flow-wheel image + (depth, visibility, visibility) image -> two codec
latents concatenated on channels: 2 x C track-latent channels).

Video in: float [T,H,W,3] or [B,T,H,W,3] in [0,1] (ComfyUI IMAGE layout). Latents: [B,C,T',H',W'].
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from moaw_core.tracking.tracks import DenseTracks, TrackImages, decode_track_images, encode_track_images

PATCH_PCA_ID = "moaw.patch_pca.v1"


def _video_batch(video, name: str = "video") -> tuple[torch.Tensor, bool]:
    """[T,H,W,3] or [B,T,H,W,3] -> ([B,T,H,W,3] float, was_batched)."""
    if not isinstance(video, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor [T,H,W,3] or [B,T,H,W,3], got {type(video).__name__}")
    if video.ndim not in (4, 5) or video.shape[-1] != 3:
        raise ValueError(f"{name}: expected shape [T,H,W,3] or [B,T,H,W,3] in [0,1], got {tuple(video.shape)}")
    return (video if video.ndim == 5 else video[None]).float(), video.ndim == 5


def _check_latents(latents, channels: int, name: str = "latents") -> None:
    if not isinstance(latents, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor [B,C,T,H,W], got {type(latents).__name__}")
    if latents.ndim != 5 or latents.shape[1] != channels:
        raise ValueError(f"{name}: expected shape [B,{channels},T,H,W], got {tuple(latents.shape)}")


class PatchPCACodec:
    """Linear codec over non-overlapping p x p RGB patches (48 values for p=4) -> C channels.

    latent = ((patch - mean) @ basis) / scale, patch = (latent * scale) @ basis.T + mean;
    basis [P, C] orthonormal columns (top PCA components), scale [C] per-channel std (latents are
    about unit variance, as diffusion expects). No temporal compression.
    """

    def __init__(self, basis: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor, patch: int = 4) -> None:
        P = 3 * patch * patch
        if basis.ndim != 2 or basis.shape[0] != P:
            raise ValueError(f"basis: expected [{P}, C] for patch {patch}, got {tuple(basis.shape)}")
        C = basis.shape[1]
        if tuple(mean.shape) != (P,) or tuple(scale.shape) != (C,):
            raise ValueError(f"mean/scale: expected [{P}] and [{C}], got {tuple(mean.shape)}, {tuple(scale.shape)}")
        self.basis, self.mean, self.scale = basis.float(), mean.float(), scale.float()
        self.patch = patch
        self.codec_id = PATCH_PCA_ID
        self.latent_channels = C
        self.spatial_factor = patch
        self.temporal_factor = 1

    # -------------------------------------------------------------- patches
    def _patches(self, v: torch.Tensor) -> torch.Tensor:
        """[B,T,H,W,3] -> [B,T,H/p,W/p,3*p*p] (order: dy, dx, rgb)."""
        B, T, H, W, _ = v.shape
        p = self.patch
        if H % p or W % p:
            raise ValueError(f"video: expected height and width divisible by {p}, got {H}x{W}")
        x = v.reshape(B, T, H // p, p, W // p, p, 3).permute(0, 1, 2, 4, 3, 5, 6)
        return x.reshape(B, T, H // p, W // p, p * p * 3)

    def _unpatch(self, x: torch.Tensor) -> torch.Tensor:
        B, T, h, w, _ = x.shape
        p = self.patch
        x = x.reshape(B, T, h, w, p, p, 3).permute(0, 1, 2, 4, 3, 5, 6)
        return x.reshape(B, T, h * p, w * p, 3)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Args: video [T,H,W,3] or [B,T,H,W,3] in [0,1]. Returns latents [B,C,T,H/p,W/p]."""
        v, _ = _video_batch(video)
        basis, mean, scale = (t.to(v.device) for t in (self.basis, self.mean, self.scale))
        z = (self._patches(v) - mean) @ basis / scale
        return z.permute(0, 4, 1, 2, 3).contiguous()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Args: latents [B,C,T,h,w]. Returns video [B,T,h*p,w*p,3] (not clamped)."""
        _check_latents(latents, self.latent_channels)
        z = latents.float().permute(0, 2, 3, 4, 1)
        basis, mean, scale = (t.to(z.device) for t in (self.basis, self.mean, self.scale))
        return self._unpatch((z * scale) @ basis.T + mean)

    # -------------------------------------------------------------- fit / io
    @classmethod
    def fit(cls, videos: torch.Tensor, channels: int = 16, patch: int = 4) -> "PatchPCACodec":
        """PCA of all p x p patches of `videos` [N,T,H,W,3] (or [T,H,W,3]). Returns the codec."""
        v, _ = _video_batch(videos, "videos")
        tmp = cls(torch.eye(3 * patch * patch)[:, :channels], torch.zeros(3 * patch * patch),
                  torch.ones(channels), patch)
        x = tmp._patches(v).reshape(-1, 3 * patch * patch).double()
        mean = x.mean(0)
        cov = (x - mean).T @ (x - mean) / max(len(x) - 1, 1)
        evals, evecs = torch.linalg.eigh(cov)
        order = torch.argsort(evals, descending=True)[:channels]
        basis = evecs[:, order]
        basis = basis * torch.sign(basis.sum(0) + 1e-12)  # deterministic sign
        scale = evals[order].clamp_min(1e-8).sqrt()
        return cls(basis.float(), mean.float(), scale.float(), patch)

    def save(self, path: str | Path) -> None:
        save_file({"basis": self.basis.contiguous(), "mean": self.mean.contiguous(), "scale": self.scale.contiguous()},
                  str(path), metadata={"moaw.codec": self.codec_id, "patch": str(self.patch)})

    @classmethod
    def load(cls, path: str | Path) -> "PatchPCACodec":
        """Load from a safetensors file written by `save`."""
        from moaw_core.files import read_safetensors

        path = Path(path)
        sd, meta = read_safetensors(path, "codec path")
        if meta.get("moaw.codec") != PATCH_PCA_ID or not {"basis", "mean", "scale"} <= set(sd):
            raise ValueError(f"codec path: {path} is not a {PATCH_PCA_ID} codec file "
                             f"(metadata moaw.codec={meta.get('moaw.codec')!r}, keys {sorted(sd)[:5]})")
        return cls(sd["basis"], sd["mean"], sd["scale"], int(meta.get("patch", 4)))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two videos in [0,1] (b clamped)."""
    mse = float(((a.float() - b.float().clamp(0, 1)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


class DiffusersVAECodec:
    """A user's diffusers video VAE as a codec: AutoencoderKLWan, AutoencoderKLCogVideoX or
    AutoencoderKLTemporalDecoder (SVD; per-frame, decode needs the frame count).

    Latents are normalised the way the matching pipeline does it (Wan: (z - latents_mean) / latents_std;
    others: z * scaling_factor). Encoding uses the posterior mean (deterministic).
    """

    def __init__(self, vae: torch.nn.Module) -> None:
        kind = type(vae).__name__
        if kind not in ("AutoencoderKLWan", "AutoencoderKLCogVideoX", "AutoencoderKLTemporalDecoder"):
            raise TypeError(f"vae: expected a diffusers AutoencoderKLWan / AutoencoderKLCogVideoX / "
                            f"AutoencoderKLTemporalDecoder, got {kind}")
        self.vae, self.kind = vae, kind
        cfg = vae.config
        self.codec_id = f"diffusers.{kind}"
        self.latent_channels = cfg.z_dim if kind == "AutoencoderKLWan" else cfg.latent_channels
        self.spatial_factor = 2 ** (len(getattr(cfg, "dim_mult", None) or cfg.block_out_channels) - 1)
        self.temporal_factor = {"AutoencoderKLWan": 4, "AutoencoderKLCogVideoX": 4}.get(kind, 1)

    def _norm(self, z: torch.Tensor, inverse: bool) -> torch.Tensor:
        cfg = self.vae.config
        if self.kind == "AutoencoderKLWan":
            shape = (1, -1, 1, 1, 1)
            mean = torch.tensor(cfg.latents_mean, device=z.device, dtype=z.dtype).view(shape)
            std = torch.tensor(cfg.latents_std, device=z.device, dtype=z.dtype).view(shape)
            return z * std + mean if inverse else (z - mean) / std
        s = float(getattr(cfg, "scaling_factor", 1.0))
        return z / s if inverse else z * s

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Args: video [T,H,W,3] or [B,T,H,W,3] in [0,1]. Returns latents [B,C,T',H',W']."""
        v, _ = _video_batch(video)
        p = next(self.vae.parameters())
        x = (v * 2 - 1).to(p.device, p.dtype)
        B, T = x.shape[:2]
        if self.kind == "AutoencoderKLTemporalDecoder":
            z = self.vae.encode(x.flatten(0, 1).permute(0, 3, 1, 2)).latent_dist.mode()
            z = z.unflatten(0, (B, T)).permute(0, 2, 1, 3, 4)
        else:
            z = self.vae.encode(x.permute(0, 4, 1, 2, 3)).latent_dist.mode()
        return self._norm(z.float(), inverse=False)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Args: latents [B,C,T',H',W']. Returns video [B,T,H,W,3] in [0,1]."""
        _check_latents(latents, self.latent_channels)
        p = next(self.vae.parameters())
        z = self._norm(latents.float(), inverse=True).to(p.device, p.dtype)
        B, _, T = z.shape[:3]
        if self.kind == "AutoencoderKLTemporalDecoder":
            x = self.vae.decode(z.permute(0, 2, 1, 3, 4).flatten(0, 1), num_frames=T).sample
            x = x.unflatten(0, (B, T)).permute(0, 1, 3, 4, 2)
        else:
            x = self.vae.decode(z).sample.permute(0, 2, 3, 4, 1)
        return ((x.float() + 1) / 2).clamp(0, 1)


@dataclass(frozen=True)
class TrackEncoding:
    """How tracks become track latents: two images through `codec_id`, concatenated on channels.

    Channel layout: [0, C) = flow-wheel image latents, [C, 2C) = (depth, visibility, visibility) image
    latents. max_disp in px (full saturation); depth_range (near, far) maps depth to grey.
    """

    max_disp: float
    codec_id: str
    latent_channels: int
    depth_range: tuple[float, float] = (0.0, 16.0)

    @property
    def track_channels(self) -> int:
        return 2 * self.latent_channels

    def to_json(self) -> str:
        return json.dumps({"max_disp": self.max_disp, "codec": self.codec_id,
                           "depth_range": list(self.depth_range),
                           "layout": {"flow_rgb": [0, self.latent_channels],
                                      "depth_vis_vis": [self.latent_channels, 2 * self.latent_channels]}})

    @classmethod
    def from_json(cls, text: str) -> "TrackEncoding":
        d = json.loads(text)
        return cls(float(d["max_disp"]), d["codec"], int(d["layout"]["flow_rgb"][1]), tuple(d["depth_range"]))


class TrackCodec:
    """Dense tracks <-> track latents [B, 2C, T', H', W'] through a pixel codec."""

    def __init__(self, codec, encoding: TrackEncoding) -> None:
        if codec.codec_id != encoding.codec_id or codec.latent_channels != encoding.latent_channels:
            raise ValueError(f"codec: the track encoding expects codec {encoding.codec_id!r} with "
                             f"{encoding.latent_channels} channels, got {codec.codec_id!r} with {codec.latent_channels}")
        self.codec, self.encoding = codec, encoding

    def images(self, tracks: DenseTracks) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (flow image, depth/visibility image), each [T,H,W,3] in [0,1]."""
        im = encode_track_images(tracks, self.encoding.max_disp, self.encoding.depth_range)
        depth = im.depth[..., 0] if im.depth is not None else torch.zeros_like(im.flow[..., 0])
        vis = im.visibility[..., 0]
        return im.flow, torch.stack([depth, vis, vis], -1)

    def encode(self, tracks: DenseTracks | list[DenseTracks]) -> torch.Tensor:
        """Args: one DenseTracks or a list (same size). Returns [B, 2C, T', H', W']."""
        items = [tracks] if isinstance(tracks, DenseTracks) else list(tracks)
        flows, dvs = zip(*(self.images(t) for t in items))
        return torch.cat([self.codec.encode(torch.stack(flows)), self.codec.encode(torch.stack(dvs))], 1)

    def decode(self, latents: torch.Tensor, with_depth: bool = True) -> list[DenseTracks]:
        """Args: latents [B, 2C, T', H', W']. Returns B DenseTracks."""
        C = self.encoding.latent_channels
        _check_latents(latents, 2 * C)
        flow = self.codec.decode(latents[:, :C]).clamp(0, 1)
        dv = self.codec.decode(latents[:, C:]).clamp(0, 1)
        out = []
        for f, d in zip(flow, dv):
            vis = d[..., 1:].mean(-1, keepdim=True).expand_as(f)
            depth = d[..., :1].expand_as(f) if with_depth else None
            out.append(decode_track_images(TrackImages(f, vis, self.encoding.max_disp, depth,
                                                       tuple(self.encoding.depth_range) if with_depth else None)))
        return out
