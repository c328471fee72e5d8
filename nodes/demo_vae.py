"""LoadMoawCodecVAE: the bundled demo codec (a fixed linear patch codec) as a ComfyUI VAE.

The tiny demo models work on the latents of `moaw_core.tracking.codecs.PatchPCACodec` (16 channels, 1/4 resolution,
no temporal compression). Wrapped as a `comfy.sd.VAE`, it works with the core VAEEncode / VAEDecode nodes.
ComfyUI keeps VAE-space latents and maps them into model space with the model's latent format (Wan 2.1
here), so encode returns `Wan21.process_out(codec latents)` and decode inverts it: the model then sees the
codec latents it was trained on.
"""
from __future__ import annotations

import comfy.latent_formats
import comfy.sd
import folder_paths
import torch
from comfy_api.latest import io

from moaw_core.tracking.codecs import PatchPCACodec

from . import paths
from .types import CATEGORY


class CodecVAE(comfy.sd.VAE):
    """Minimal VAE: only what VAEEncode / VAEDecode and the Moaw nodes use."""

    def __init__(self, codec: PatchPCACodec, latent_format=None):  # noqa: super().__init__ builds real VAEs only
        self.codec = codec
        self.latent_format = latent_format or comfy.latent_formats.Wan21()
        self.latent_channels = codec.basis.shape[1]
        self.latent_dim = 3
        self.output_channels = 3
        self.downscale_ratio = codec.patch
        self.upscale_ratio = codec.patch
        self.device = torch.device("cpu")
        self.output_device = torch.device("cpu")
        self.vae_dtype = torch.float32
        self.not_video = False

    def encode(self, pixel_samples: torch.Tensor) -> torch.Tensor:
        """IMAGE frames [T, H, W, 3] -> VAE-space latent [1, C, T, H/p, W/p]."""
        pixels = pixel_samples[..., :3].float().cpu()
        p = self.codec.patch
        if pixels.shape[1] % p or pixels.shape[2] % p:
            raise ValueError(f"Moaw codec VAE: frame size {tuple(pixels.shape[1:3])} must be a multiple of {p}; "
                             f"resize the frames first")
        return self.latent_format.process_out(self.codec.encode(pixels))

    def decode(self, samples_in: torch.Tensor, vae_options={}) -> torch.Tensor:
        """VAE-space latent [B, C, T, h, w] -> frames [B, T, H, W, 3] (VAEDecode flattens B and T)."""
        if samples_in.ndim != 5 or samples_in.shape[1] != self.latent_channels:
            raise ValueError(f"Moaw codec VAE: expected a video latent [B, {self.latent_channels}, T, H, W], got "
                             f"{tuple(samples_in.shape)}")
        z = self.latent_format.process_in(samples_in.float().cpu())
        return self.codec.decode(z).clamp(0, 1)

    def spacial_compression_decode(self):
        return self.codec.patch

    def spacial_compression_encode(self):
        return self.codec.patch

    def temporal_compression_decode(self):
        return 1

    def temporal_compression_encode(self):
        return 1

    def throw_exception_if_invalid(self):
        return None


class LoadMoawCodecVAE(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LoadMoawCodecVAE",
            display_name="Load Moaw Demo Codec (VAE)",
            category=CATEGORY,
            description="Loads the latent codec of the bundled tiny demo models as a VAE for VAEEncode/VAEDecode. "
                        "Real models use their own VAE instead.",
            inputs=[io.Combo.Input("codec_name", options=folder_paths.get_filename_list(paths.CODECS),
                                   tooltip="Codec file in models/moaw_codecs (the bundled demo codec is listed).")],
            outputs=[io.Vae.Output(tooltip="The codec as a VAE, for VAE Encode / VAE Decode.")],
        )

    @classmethod
    def execute(cls, codec_name: str) -> io.NodeOutput:
        path = folder_paths.get_full_path_or_raise(paths.CODECS, codec_name)
        return io.NodeOutput(CodecVAE(PatchPCACodec.load(path)))


NODES = [LoadMoawCodecVAE]
