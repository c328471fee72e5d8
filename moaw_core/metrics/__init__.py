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

from moaw_core.metrics.appearance import (frame0_fidelity, hf_energy, hf_energy_ratio, psnr, ssim,
                                          temporal_consistency)
from moaw_core.metrics.controls import CONTROLS, control_videos, frozen, recolour, reversed_time, uniform_noise
from moaw_core.metrics.fidelity import (discrete_frechet, displacement_cosine_matrix, grid_in_box, motion_fidelity,
                                        normalise_trajectories, query_points, trajectory_shape)
from moaw_core.metrics.field import motion_field_agreement, moving_region
from moaw_core.metrics.tracking import flow_epe, track_metrics
from moaw_core.metrics.transfer import TRACKERS, SourceMotion, prepare_source, score_transfer, track_video

__all__ = ["CONTROLS", "TRACKERS", "SourceMotion", "control_videos", "discrete_frechet", "displacement_cosine_matrix",
           "flow_epe", "frame0_fidelity", "frozen", "grid_in_box", "hf_energy", "hf_energy_ratio", "motion_fidelity",
           "motion_field_agreement", "moving_region", "normalise_trajectories", "prepare_source", "psnr",
           "query_points", "recolour", "reversed_time", "score_transfer", "ssim", "temporal_consistency",
           "track_metrics", "track_video", "trajectory_shape", "uniform_noise"]
