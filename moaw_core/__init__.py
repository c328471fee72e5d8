"""moaw_core: the host-agnostic Moaw library (plain torch + diffusers; no ComfyUI imports).

Motion transfer by feature injection: a tracker (a fine-tuned copy of a video diffusion model) is run on a
source video, chosen block features are cached, and added to the structurally identical generator's blocks
while it samples. Packages (docs/CONVENTIONS.md has the full map): `engine` (adapters, hooks, injection,
features, capture, the sampler, generation, model files), `tracking`, `selection`, `moft`, `det`, `data`,
`metrics`, `training`, `cli` (the verbs of `python -m moaw_core`). Each package re-exports its public names
lazily: importing one imports none of its modules.
"""

__version__ = "0.1.0"
