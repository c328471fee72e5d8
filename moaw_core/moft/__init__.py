"""MOFT (Xiao et al., NeurIPS 2024): training-free motion features and latent guidance, host-agnostic.

- `features`: content removal, motion channels (PCA / own-SVD), region masks, the reference [frames x channels].
- `channels`: channel selection on the motion-labelled dataset and its `<model>.moft.json` file.
- `guidance`: the guidance config, the early-stopping feature tap, one guided update of the latents.
- `diffusers`: reference and guided sampling for diffusers models (`guided_sample`).
ComfyUI binds the same pieces in `nodes/moft_host.py`.
"""
from moaw_core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "MoftChannels": "channels", "channels_path": "channels", "select_channels": "channels",
    "MoftGuide": "diffusers", "guided_sample": "diffusers", "reference_from_model": "diffusers",
    "MoftReference": "features", "build_reference": "features", "moft_series": "features",
    "MoftGuidanceConfig": "guidance",
})
