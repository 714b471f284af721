"""Event sources: the simulator, GitHub audit-log export files, Azure Log Analytics; and the shared normalizer."""
