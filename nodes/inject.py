"""InjectMotionSampler (a KSampler with motion injection) and ApplyMotionInjection (a patched MODEL clone)."""
from __future__ import annotations

import comfy.samplers
from comfy_api.latest import io

from moaw_core.engine.inject import BRANCHES, MODES, InjectConfig, active_steps

from .bridge import apply_injection, ksample
from .types import CATEGORY, MotionFeaturesType


def injection_inputs() -> list:
    """The injection settings shared by both nodes."""
    return [
        MotionFeaturesType.Input("features", tooltip="Motion features (ExtractMotionFeatures -> SelectLayers)."),
        io.Float.Input("strength", default=1.0, min=-10.0, max=10.0, step=0.05,
                       tooltip="s in h + s*f ('add'), or the blend weight ('blend'); 0 disables injection."),
        io.Float.Input("start", default=0.0, min=0.0, max=1.0, step=0.01,
                       tooltip="First part of the schedule with injection (fraction of the steps)."),
        io.Float.Input("end", default=0.5, min=0.0, max=1.0, step=0.01,
                       tooltip="Injection stops at this fraction of the steps (motion is set early; later steps "
                               "refine appearance)."),
        io.Combo.Input("mode", options=list(MODES), default="add",
                       tooltip="add: h + s*f (Moaw). replace: f. blend: h + s*(f - h)."),
        io.Boolean.Input("normalize", default=False,
                         tooltip="Rescale the features per channel to the generator's statistics first."),
        io.Boolean.Input("remove_content", default=False,
                         tooltip="Subtract the features' mean over frames (MOFT) so only motion is injected; "
                                 "recommended for training-free features."),
        io.Combo.Input("branch", options=list(BRANCHES), default="cond",
                       tooltip="cond: inject into the positive pass only. both: positive and negative passes."),
        io.Boolean.Input("resample", default=True,
                         tooltip="Resample features whose frame count or size differ from the generation "
                                 "(logged); off makes a mismatch an error."),
        io.Mask.Input("mask", optional=True,
                      tooltip="Where to inject (white = full strength); one mask or one per frame."),
    ]


def inject_config(features, strength, start, end, mode, normalize, remove_content, branch, resample,
                  mask=None) -> InjectConfig:
    if mask is not None and mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    return InjectConfig(layers=tuple(features.layers), strength=strength, mode=mode, start=start, end=end,
                        normalize=normalize, remove_content=remove_content, mask=mask, branch=branch,
                        resample=resample)


class ApplyMotionInjection(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ApplyMotionInjection",
            display_name="Apply Motion Injection",
            category=CATEGORY,
            description="Returns a copy of the MODEL that injects the motion features while it samples; use it with "
                        "KSampler or SamplerCustomAdvanced. The input MODEL is not modified.",
            inputs=[io.Model.Input("model", tooltip="The generator (same architecture and size as the tracker).")]
            + injection_inputs(),
            outputs=[io.Model.Output(tooltip="A clone of the model that injects the features while it samples.")],
        )

    @classmethod
    def execute(cls, model, features, **settings) -> io.NodeOutput:
        return io.NodeOutput(apply_injection(model, features, inject_config(features, **settings)))


class InjectMotionSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="InjectMotionSampler",
            display_name="Inject Motion Sampler",
            category=CATEGORY,
            description="KSampler that adds the source video's motion features to the generator's blocks while it "
                        "samples (Moaw). The input MODEL is not modified.",
            inputs=[
                io.Model.Input("model", tooltip="The generator (same architecture and size as the tracker)."),
                io.Conditioning.Input("positive", tooltip="Prompt conditioning."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning."),
                io.Latent.Input("latent_image", tooltip="Empty video latent of the output size."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Noise seed."),
                io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Sampling steps."),
                io.Float.Input("cfg", default=5.0, min=0.0, max=100.0, step=0.1, tooltip="Classifier-free guidance."),
                io.Combo.Input("sampler_name", options=list(comfy.samplers.KSampler.SAMPLERS), default="euler",
                               tooltip="Sampler."),
                io.Combo.Input("scheduler", options=list(comfy.samplers.KSampler.SCHEDULERS), default="simple",
                               tooltip="Noise schedule."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01, tooltip="Denoising strength."),
            ] + injection_inputs(),
            outputs=[io.Latent.Output(tooltip="The sampled latent, with motion injected.")],
        )

    @classmethod
    def execute(cls, model, positive, negative, latent_image, seed, steps, cfg, sampler_name, scheduler, denoise,
                features, **settings) -> io.NodeOutput:
        config = inject_config(features, **settings)
        if not active_steps(steps, config.start, config.end):
            raise ValueError(f"InjectMotionSampler: the window start {config.start} - end {config.end} contains none "
                             f"of the {steps} steps (step i runs at i/{steps}), so nothing would be injected; widen "
                             f"the window or use more steps")
        patched = apply_injection(model, features, config)
        return io.NodeOutput(ksample(patched, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                     latent_image, denoise=denoise))


NODES = [InjectMotionSampler, ApplyMotionInjection]
