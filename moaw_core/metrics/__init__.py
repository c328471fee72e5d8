"""moaw_core.metrics."""
