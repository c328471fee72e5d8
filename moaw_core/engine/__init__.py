"""The engine: what every host shares to capture block features and inject them while sampling.

adapters/ (per-architecture block access) · backbones (diffusers backbone facts, null-condition forward) ·
hooks (CaptureHook / InjectHook, `attach`) · inject (InjectConfig and the injection math) · features
(MotionFeatures and its file) · capture (capturing from diffusers models) · schedule (the one flow-Euler sampler,
training noise/losses) · transfer (tracker features, `generate`) · i2v (image-to-video conditioning) ·
checkpoint (Moaw model files) · convert (key formats) · layer_spec (layer selections) · bundle (a setup's files,
loaded).
"""
from moaw_core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "check_compatible": "adapters", "detect": "adapters", "backbone_forward": "backbones", "build_wan": "backbones",
    "family_of": "backbones", "null_condition": "backbones", "Models": "bundle", "load_models": "bundle",
    "load_tracker_codec": "bundle", "resolve_layers": "bundle",
    "capture_training_free": "capture", "load_backbone": "checkpoint", "load_tracker": "checkpoint",
    "read_checkpoint": "checkpoint", "sampling_defaults": "checkpoint", "save_model": "checkpoint",
    "MotionFeatures": "features", "CaptureHook": "hooks", "HookContext": "hooks", "InjectHook": "hooks",
    "attach": "hooks", "I2VLayout": "i2v", "image_condition": "i2v", "InjectConfig": "inject",
    "parse_layer_spec": "layer_spec", "flow_sample": "schedule", "flow_sigmas": "schedule",
    "extract_tracker_features": "transfer", "generate": "transfer",
})
