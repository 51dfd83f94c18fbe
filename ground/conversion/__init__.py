"""From a Keras model to what flies, and how well it does: conversion profiles to TFLite with the
manifest (`convert`), metrics (`metrics`), evaluation and model cards (`evaluate`), pre-flight
reports (`preflight`)."""
