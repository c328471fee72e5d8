"""moaw_core.training."""
