"""The project's error types. Each is raised where the fault is found, with a message that names
the input and the way out; the CLI prints it as one line and exits non-zero."""


class OrbitliteError(Exception):
    """A fault in the user's input or environment, as opposed to a bug."""


class ModelError(OrbitliteError):
    """A model file that is missing, corrupt, or does not fit the runtime."""


class ManifestError(OrbitliteError):
    """A model manifest that is missing, malformed, of an unknown version or not the model's."""


class SceneError(OrbitliteError):
    """A scene that cannot be read, or lacks what the model needs."""


class ProductError(OrbitliteError):
    """A product that cannot be decoded."""


class OutputError(OrbitliteError):
    """A place the runtime cannot write to."""


class StoreError(OrbitliteError):
    """The on-board product store cannot do what was asked: its file fails (full, I/O, corrupt),
    or the caller broke the journal's order (a gap, an overlap, another model for a scene)."""


class QuotaError(StoreError):
    """A product the store's quota and drop policy refuse; the refusal is counted and logged."""
