"""moaw_core.cli."""
