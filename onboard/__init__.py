"""orbitlite's flight runtime: runs TFLite land-cover classifiers tile by tile over scenes.

Runs on the payload computer with numpy, msgpack, pyserial and a TFLite interpreter only.
"""

__version__ = "0.1.0"
