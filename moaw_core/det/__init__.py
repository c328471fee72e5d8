"""DeT (Decouple and Track, ICCV 2025): per-block temporal Conv1d adapters trained on one source video with the
dense tracking loss, then applied to the first ~35 % of the generator's blocks. See docs/DET.md.

adapter.py (the module and its math) · placement.py (where it sits, diffusers hosts) · tracks.py (source tracks
and the tracking loss) · train.py (the per-video loop) · files.py (safetensors I/O) · pipeline.py (diffusers
train/apply for the CLI and the demo) · plot.py (loss graph) · cli.py (the `det` verb).
"""
