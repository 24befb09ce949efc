"""The table engine: sparse lookups whose gradients are the rows a batch touched, and updates of
those rows only."""
