"""The crash-safe on-board product store and its downlink queue."""
