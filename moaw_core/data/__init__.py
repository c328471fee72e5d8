"""Clips and datasets: synthetic layered clips (synth, textures, synth_cache), 3D scenes (scenes3d), real
data readers (real: videos, Sintel, TAP-Vid, PointOdyssey, MTBench cases), MTBench folders (mtbench), the demo's
cases (demo_cases), synthetic sources (sources), photometric augmentation (augment).
"""
from moaw_core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "PhotometricConfig": "augment", "Case": "demo_cases", "build_case": "demo_cases", "user_case": "demo_cases",
    "find_cases": "mtbench", "load_sintel_case": "real", "load_video": "real", "probe_video": "real",
    "Scene3DConfig": "scenes3d", "Scenes3DDataset": "scenes3d", "synthetic_source": "sources",
    "SynthConfig": "synth", "SynthDataset": "synth", "render_clip": "synth", "render_pool": "synth_cache",
})
