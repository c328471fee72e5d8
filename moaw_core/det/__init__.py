"""DeT (Decouple and Track, ICCV 2025): per-block temporal Conv1d adapters trained on one source video with the
dense tracking loss, then applied to the first ~35 % of the generator's blocks. See docs/DET.md.

adapter.py (the module and its math) · placement.py (where it sits, diffusers hosts) · tracks.py (source tracks
and the tracking loss) · train.py (the per-video loop) · files.py (safetensors I/O) · pipeline.py (diffusers
train/apply for the CLI and the demo) · plot.py (loss graph) · cli.py (the `det` verb).
"""
from moaw_core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "DeTAdapters": "adapter", "TemporalConvAdapter": "adapter", "first_fraction": "adapter", "TrainedDeT": "files",
    "load_adapters": "files", "save_adapters": "files", "adapters_for": "pipeline", "generate_det": "pipeline",
    "train_det": "pipeline", "train_on_video": "pipeline", "attach_det": "placement", "check_adapters": "placement",
    "LatentTracks": "tracks", "source_tracks": "tracks", "tracking_loss": "tracks", "DeTTrainConfig": "train",
    "train_adapters": "train",
})
