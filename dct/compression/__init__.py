"""Pure tensor math of compression: thresholds, selections, position codes. No torch.distributed."""
