"""Measured, not asserted: the format probe, comparisons of weights/predictions/configs, and
snippets run in a fresh process (the way a restarted kernel or a server sees a file)."""
