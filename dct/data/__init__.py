"""Click data: batch types, synthetic samples, per-rank reading."""
