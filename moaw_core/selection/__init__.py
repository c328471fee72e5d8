"""moaw_core.selection."""
