"""Inference: model loading, the TFLite file reader, pre-processing, screening and the scoring kernels."""
