"""Backbone registry, per-step feature extraction, feature stores and fusion."""
