"""moaw_core.data."""
