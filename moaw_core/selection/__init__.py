"""Layer selection (Moaw stage 2): which (block, step) features separate motion classes. motion_dataset
(the motion-labelled clips) · scoring (Fisher / silhouette / probe) · layer_selection (feature sources,
`score_layers`, LayerScores) · heatmap (its picture). The CLI verb is `moaw_core.cli.score`.
"""
from moaw_core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "render_heatmap": "heatmap", "GeneratorSource": "layer_selection", "LayerScores": "layer_selection",
    "ScoreConfig": "layer_selection", "TrackerSource": "layer_selection", "score_dataset": "layer_selection",
    "score_layers": "layer_selection", "training_free_sigmas": "layer_selection", "MotionDataset": "motion_dataset",
    "MotionDatasetConfig": "motion_dataset", "build_motion_dataset": "motion_dataset", "SCORES": "scoring",
    "pool_features": "scoring", "rank_key": "scoring", "score_table": "scoring", "top_k": "scoring",
})
