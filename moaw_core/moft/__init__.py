"""MOFT (Xiao et al., NeurIPS 2024): training-free motion features and latent guidance, host-agnostic.

- `features`: content removal, motion channels (PCA / own-SVD), region masks, the reference [frames x channels].
- `channels`: channel selection on the motion-labelled dataset and its `<model>.moft.json` file.
- `guidance`: the guidance config, the early-stopping feature tap, one guided update of the latents.
- `diffusers`: reference and guided sampling for diffusers models (`guided_sample`).
ComfyUI binds the same pieces in `nodes/moft_host.py`.
"""
from moaw_core.moft.channels import MoftChannels, channels_path, select_channels
from moaw_core.moft.diffusers import MoftGuide, guided_sample, reference_from_model
from moaw_core.moft.features import MoftReference, build_reference, moft_series
from moaw_core.moft.guidance import MoftGuidanceConfig

__all__ = ["MoftChannels", "MoftGuidanceConfig", "MoftGuide", "MoftReference", "build_reference", "channels_path",
           "guided_sample", "moft_series", "reference_from_model", "select_channels"]
