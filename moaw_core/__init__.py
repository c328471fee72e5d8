"""moaw_core: the host-agnostic Moaw library (plain torch + diffusers; no ComfyUI imports).

Motion transfer by feature injection: a tracker (a fine-tuned copy of a video diffusion model) is run on a
source video, chosen block features are cached (`features`), and added to the structurally identical
generator's blocks while it samples (`inject`, `hooks`). Architecture specifics live in `adapters/`.
"""

__version__ = "0.1.0"
