"""The contracts shared with the ground: model manifest, product, tile grid, deploy bundle, CCSDS packets."""
