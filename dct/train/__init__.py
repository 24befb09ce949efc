"""The training loop, its optimizers, evaluation, metric sinks and
reports."""
