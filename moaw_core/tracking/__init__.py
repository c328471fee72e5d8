"""moaw_core.tracking."""
