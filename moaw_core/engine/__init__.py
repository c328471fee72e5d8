"""moaw_core.engine."""
