"""Custom ComfyUI socket types of the pack, declared once."""
from comfy_api.latest import io

MotionFeaturesType = io.Custom("MOTION_FEATURES")
MoawTrackerType = io.Custom("MOAW_TRACKER")
LayerScoresType = io.Custom("MOAW_LAYER_SCORES")
DeTType = io.Custom("MOAW_DET")

CATEGORY = "Moaw"
MoftReferenceType = io.Custom("MOFT_REFERENCE")
MoftChannelsType = io.Custom("MOFT_CHANNELS")
