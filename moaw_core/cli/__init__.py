"""moaw_core.cli: the CLI verbs. The bundled tiny models' paths live here, resolved next to the package (not
the current folder), so `python -m moaw_core predict clip.mp4` works from any directory."""
from pathlib import Path

MODELS = Path(__file__).resolve().parents[2] / "models"
GENERATOR = MODELS / "generators" / "moaw_tiny_wan_generator.safetensors"
TRACKER = MODELS / "trackers" / "moaw_tiny_wan_tracker.safetensors"
CODEC = MODELS / "codecs" / "moaw_patch_pca_codec.safetensors"
