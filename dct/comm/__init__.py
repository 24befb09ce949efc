"""Collectives and their byte accounting: the metered all-to-all, DDP comm hook and codec seam."""
