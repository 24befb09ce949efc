"""The DP x MP grid, table sharding and the hybrid-parallel model wrapper."""
