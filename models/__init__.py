"""Keras architecture families for on-board land-cover classification (tf-keras, so that
tensorflow-model-optimization can prune and quantize them)."""
