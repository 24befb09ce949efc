"""The training loop, its optimizers, evaluation, checkpointing in the loop, metric sinks and
reports."""
