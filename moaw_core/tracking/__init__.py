"""Point and dense tracking: the Moaw tracker (tracker), dense track containers and conversions (tracks),
video/track latent codecs (codecs), OpenCV / CoTracker baselines (cv_trackers), long clips by windows
(long_tracks), ATI trajectory export (ati).
"""
from moaw_core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "PatchPCACodec": "codecs", "TrackCodec": "codecs", "TrackEncoding": "codecs", "track_dense_dis": "cv_trackers",
    "track_points_dis": "cv_trackers", "track_points_lk": "cv_trackers", "track_long": "long_tracks",
    "MoawTracker": "tracker", "DenseTracks": "tracks", "identity_tracks": "tracks",
})
