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


class BudgetError(OrbitliteError):
    """A budget or board profile that makes no sense."""


class BundleError(OrbitliteError):
    """A bundle that cannot be built, or a slot whose files are not the bundle's."""


class ConfigError(OrbitliteError):
    """A service configuration that is missing, malformed, or names things that do not fit."""


class LinkError(OrbitliteError):
    """The link failed: no answer after every retransmission, or a port that cannot be used."""


class CommandRefused(OrbitliteError):
    """The payload refused or could not carry out a command; `code` says which kind."""

    def __init__(self, command: str, code: str, error: str) -> None:
        super().__init__(f"{command}: refused ({code}): {error}")
        self.code = code


class SlotError(OrbitliteError):
    """A model slot that cannot be switched to: empty, or its models fail the self-test."""


class TransferError(OrbitliteError):
    """A transfer that cannot complete: the file changed, a checksum failed, the disk is full."""


class BusyError(OrbitliteError):
    """What was asked needs the board to itself, and the service is running a scene."""


class BenchError(OrbitliteError):
    """A benchmark that cannot run, or a benchmark result that does not validate."""
