"""MOFT nodes: reference, channel selection (and loading), a GUIDER for SamplerCustomAdvanced, a one-node sampler.

All tensor work is in `moaw_core.moft`; ComfyUI binding in `nodes/moft_host.py`. Each node clones the MODEL it
patches; the caller's MODEL is never modified.
"""
from __future__ import annotations

import comfy.samplers
import comfy.utils
from comfy_api.latest import io

from moaw_core.moft.channels import MoftChannels
from moaw_core.moft.features import LOSSES, NOISE_MODES
from moaw_core.moft.guidance import MoftGuidanceConfig

from . import moft_host
from .types import CATEGORY, MoftChannelsType, MoftReferenceType

SUB = CATEGORY + "/MOFT"


def _layer_input():
    return io.String.Input("layer", default="block.2",
                           tooltip="Feature block (e.g. block.2). MOFT reads a mid-depth block; the channels file "
                                   "records the block it was selected at.")


def _sigma_input():
    return io.Float.Input("sigma", default=0.2, min=0.01, max=1.0, step=0.01,
                          tooltip="Noise level of the single source pass (flow models: 0.2 = the official "
                                  "t = 200/1000).")


def guidance_inputs() -> list:
    return [
        MoftReferenceType.Input("reference", tooltip="Reference MOFT of the source video (MOFT Reference)."),
        io.Float.Input("weight", default=8.0, min=0.0, max=1000.0, step=0.5,
                       tooltip="Loss weight (official 6-10). 0 = plain sampling."),
        io.Float.Input("step_size", default=0.5, min=0.0, max=100.0, step=0.05,
                       tooltip="Latents -= step_size * gradient at each update (official 0.5)."),
        io.Float.Input("start", default=0.12, min=0.0, max=1.0, step=0.01,
                       tooltip="First guided step as a fraction of the steps (0.12 x 25 = step 3, official)."),
        io.Float.Input("end", default=0.48, min=0.0, max=1.0, step=0.01,
                       tooltip="Guidance stops at this fraction of the steps (0.48 x 25 = after step 11)."),
        io.Int.Input("repeats", default=2, min=1, max=20, tooltip="Gradient updates per guided step (official 2)."),
        io.Combo.Input("loss", options=list(LOSSES), default="mse",
                       tooltip="mse (official) or cosine (1 - cosine per frame, the DiT port)."),
        io.Mask.Input("mask", optional=True,
                      tooltip="Region of the generation to steer: its MOFT is averaged inside the mask and the "
                              "gradient is zero outside. One mask or one per frame; latent or pixel size."),
    ]


def guidance_config(weight, step_size, start, end, repeats, loss, mask=None) -> MoftGuidanceConfig:
    if mask is not None and mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    return MoftGuidanceConfig(start=start, end=end, repeats=repeats, loss=loss, weight=weight,
                              step_size=step_size, mask=mask)


class MoftReferenceNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MoftReference", display_name="MOFT Reference", category=SUB,
            description="Motion features of the source video: the source latent noised to sigma, one forward of "
                        "the MODEL, one block; content removed (mean over frames), motion channels kept, averaged "
                        "inside the mask per frame.",
            inputs=[
                io.Model.Input("model", tooltip="The generator that will be guided (same model)."),
                io.Latent.Input("source", tooltip="Source video latent (VAEEncode of the source frames)."),
                io.Conditioning.Input("positive", tooltip="Conditioning of the source pass (e.g. empty prompt)."),
                _layer_input(), _sigma_input(),
                io.Float.Input("fraction", default=0.04, min=0.001, max=1.0, step=0.01,
                               tooltip="Without a channels input: keep this fraction of channels by the source's "
                                       "own first singular vector (the DiT port)."),
                io.Combo.Input("noise", options=list(NOISE_MODES), default="frame",
                               tooltip="frame: one noise frame for all frames (a static video gives MOFT ~ 0, as "
                                       "DDIM inversion). independent: fresh noise per frame."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Noise seed of the source pass."),
                MoftChannelsType.Input("channels", optional=True,
                                       tooltip="Motion channels (MOFT Select Channels / Load Channels)."),
                io.Mask.Input("mask", optional=True, tooltip="Source region whose motion is taken."),
            ],
            outputs=[MoftReferenceType.Output(display_name="reference", tooltip="The source's MOFT motion reference.")],
        )

    @classmethod
    def execute(cls, model, source, positive, layer, sigma, fraction, noise, seed, channels=None,
                mask=None) -> io.NodeOutput:
        mask = mask[0] if mask is not None and mask.ndim == 3 and mask.shape[0] == 1 else mask
        ref = moft_host.comfy_reference(model, source, positive, layer.strip(), sigma, channels, fraction, mask,
                                        seed, noise)
        return io.NodeOutput(ref, ui={"text": [ref.describe()]})


class MoftSelectChannels(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MoftSelectChannels", display_name="MOFT Select Channels", category=SUB,
            description="Official MOFT channel selection: renders pan-left and pan-right clips, takes the block's "
                        "content-removed features and keeps the channels with the largest PC1 loading.",
            inputs=[
                io.Model.Input("model", tooltip="The generator."),
                io.Vae.Input("vae", tooltip="VAE that encodes the rendered clips."),
                io.Conditioning.Input("positive", tooltip="Conditioning of the feature pass (e.g. empty prompt)."),
                _layer_input(), _sigma_input(),
                io.Int.Input("channels", default=0, min=0, max=8192,
                             tooltip="Channels to keep; 0 = 4 % of the block width (the official 50 of 1280)."),
                io.Int.Input("clips", default=8, min=2, max=256, tooltip="Clips per direction."),
                io.Int.Input("frames", default=8, min=2, max=257, tooltip="Frames per clip (Wan VAE: 4k+1)."),
                io.Int.Input("width", default=64, min=16, max=2048, step=16, tooltip="Clip width in pixels."),
                io.Int.Input("height", default=64, min=16, max=2048, step=16, tooltip="Clip height in pixels."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Scene and noise seed."),
            ],
            outputs=[MoftChannelsType.Output(display_name="channels", tooltip="MOFT motion channels (indices per block).")],
        )

    @classmethod
    def execute(cls, model, vae, positive, layer, sigma, channels, clips, frames, width, height,
                seed) -> io.NodeOutput:
        pbar = comfy.utils.ProgressBar(2 * clips)
        chans = moft_host.comfy_select_channels(model, vae, positive, layer.strip(), sigma, channels, clips, frames,
                                                width, height, seed, progress=lambda i, n: pbar.update_absolute(i, n))
        text = f"{len(chans.channels)} channels at {chans.layer}; separates the pans on {chans.train_accuracy:.0%}"
        return io.NodeOutput(chans, ui={"text": [text]})


class MoftLoadChannels(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MoftLoadChannels", display_name="MOFT Load Channels", category=SUB,
            description="Loads motion channels saved next to a diffusion model (<model>.moft.json).",
            inputs=[io.Combo.Input("channels_name", options=sorted(moft_host.channel_files()) or ["(none found)"],
                                   tooltip="A .moft.json file in a diffusion_models folder.")],
            outputs=[MoftChannelsType.Output(display_name="channels", tooltip="MOFT motion channels (indices per block).")],
        )

    @classmethod
    def execute(cls, channels_name) -> io.NodeOutput:
        files = moft_host.channel_files()
        if channels_name not in files:
            raise FileNotFoundError(f"channels_name: {channels_name!r} not found; known: {sorted(files)}")
        return io.NodeOutput(MoftChannels.load(files[channels_name]))


class MoftGuiderNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MoftGuider", display_name="MOFT Guider", category=SUB,
            description="CFG guider that steers the latents toward the reference's motion (MOFT) during the chosen "
                        "steps; use with SamplerCustomAdvanced and any k-diffusion sampler.",
            inputs=[io.Model.Input("model", tooltip="The generator (the model the reference was built with)."),
                    io.Conditioning.Input("positive", tooltip="Prompt conditioning."),
                    io.Conditioning.Input("negative", tooltip="Negative conditioning."),
                    io.Float.Input("cfg", default=5.0, min=0.0, max=100.0, step=0.1,
                                   tooltip="Classifier-free guidance.")] + guidance_inputs(),
            outputs=[io.Guider.Output(tooltip="A guider that applies MOFT guidance, for SamplerCustomAdvanced.")],
        )

    @classmethod
    def execute(cls, model, positive, negative, cfg, reference, **settings) -> io.NodeOutput:
        return io.NodeOutput(moft_host.moft_guider(model, positive, negative, cfg, reference,
                                                   guidance_config(**settings)))


class MoftSamplerNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MoftSampler", display_name="MOFT Sampler", category=SUB,
            description="KSampler with MOFT motion guidance (ComfyUI's own sampler and scheduler).",
            inputs=[
                io.Model.Input("model", tooltip="The generator (the model the reference was built with)."),
                io.Conditioning.Input("positive", tooltip="Prompt conditioning."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning."),
                io.Latent.Input("latent_image", tooltip="Empty video latent with the source's frame count."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Noise seed."),
                io.Int.Input("steps", default=25, min=1, max=10000, tooltip="Sampling steps."),
                io.Float.Input("cfg", default=5.0, min=0.0, max=100.0, step=0.1, tooltip="Classifier-free guidance."),
                io.Combo.Input("sampler_name", options=list(comfy.samplers.KSampler.SAMPLERS), default="euler",
                               tooltip="Sampler."),
                io.Combo.Input("scheduler", options=list(comfy.samplers.KSampler.SCHEDULERS), default="simple",
                               tooltip="Noise schedule."),
            ] + guidance_inputs(),
            outputs=[io.Latent.Output(tooltip="The MOFT-guided sampled latent.")],
        )

    @classmethod
    def execute(cls, model, positive, negative, latent_image, seed, steps, cfg, sampler_name, scheduler, reference,
                **settings) -> io.NodeOutput:
        out, guider = moft_host.moft_sample(model, positive, negative, latent_image, seed, steps, cfg, sampler_name,
                                            scheduler, reference, guidance_config(**settings))
        text = "; ".join(f"step {k}: {v[0]:.4g} -> {v[-1]:.4g}" for k, v in sorted(guider.losses.items()))
        return io.NodeOutput(out, ui={"text": [f"MOFT loss {text}" if text else "MOFT off (weight 0)"]})


NODES = [MoftReferenceNode, MoftSelectChannels, MoftLoadChannels, MoftGuiderNode, MoftSamplerNode]
