"""Training (the `train` verb's library): TrainConfig, `train` (accelerate loop for the codec, generator,
I2V generator and tracker), `fit_codec`.
"""
from moaw_core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "TrainConfig": "trainer", "check_config": "trainer", "fit_codec": "trainer", "train": "trainer",
})
