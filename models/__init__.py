"""Single-process model definitions."""
