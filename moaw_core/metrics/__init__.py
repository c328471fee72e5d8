"""Evaluation metrics (numpy / OpenCV only).

- ``transfer``: :func:`score_transfer` -- every motion figure of a generated video against its source
  (DMT motion fidelity, DeT trajectory shape, motion-field agreement, temporal consistency), same tracker
  for both, lost steps never dropped; :func:`prepare_source` to score many generations of one source.
- ``fidelity``: motion fidelity / trajectory shape on given tracks; query grids in a foreground box/mask.
- ``field``: motion-field agreement (normalised end-point error against the source's flow).
- ``appearance``: frame-0 PSNR / SSIM, high-frequency energy (ratio), temporal consistency.
- ``controls``: frozen / reversed / noise / recoloured control videos.
- ``tracking``: TAP-Vid track metrics and optical-flow EPE against ground truth.
"""
from moaw_core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "frame0_fidelity": "appearance", "hf_energy": "appearance", "hf_energy_ratio": "appearance",
    "psnr": "appearance", "ssim": "appearance", "temporal_consistency": "appearance", "CONTROLS": "controls",
    "control_videos": "controls", "frozen": "controls", "recolour": "controls", "reversed_time": "controls",
    "uniform_noise": "controls", "discrete_frechet": "fidelity", "displacement_cosine_matrix": "fidelity",
    "grid_in_box": "fidelity", "motion_fidelity": "fidelity", "normalise_trajectories": "fidelity",
    "query_points": "fidelity", "trajectory_shape": "fidelity", "motion_field_agreement": "field",
    "moving_region": "field", "flow_epe": "tracking", "track_metrics": "tracking", "SourceMotion": "transfer",
    "TRACKERS": "transfer", "prepare_source": "transfer", "score_transfer": "transfer", "track_video": "transfer",
})
