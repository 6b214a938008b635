"""Temporal encoders, pooling and the binary clip classifier."""
