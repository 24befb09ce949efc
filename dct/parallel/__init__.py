"""The DP x MP grid, table sharding, and the hybrid and pipeline model wrappers."""
