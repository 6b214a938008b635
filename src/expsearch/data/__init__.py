"""Video sources, the synthetic dashcam generator, decoding and split manifests."""
