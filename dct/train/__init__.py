"""Training loop, evaluation, metric sinks and the run entry."""
