"""The ground toolchain's error types, each named for what failed. All derive from
`onboard.errors.OrbitliteError`, so the CLI prints them as one line and exits non-zero."""

from onboard.errors import OrbitliteError


class DatasetError(OrbitliteError):
    """A dataset that is missing, malformed or does not fit the task (or the model)."""


class ArchitectureError(OrbitliteError):
    """An unknown architecture, or a config override it does not take."""


class KerasModelError(OrbitliteError):
    """A Keras model, or the record `ground train` writes beside it, that is missing or cannot be loaded."""


class TrainingError(OrbitliteError):
    """A training request that cannot be carried out: an unknown optimizer, an output the model
    cannot be saved as."""


class PruningError(OrbitliteError):
    """An unknown pruning method or schedule, a sparsity out of range, or a model a method cannot prune."""


class ConversionError(OrbitliteError):
    """An unknown conversion profile."""


class EvaluationError(OrbitliteError):
    """A model's evaluation that is missing or unreadable."""


class LinkRateError(OrbitliteError):
    """A downlink that is neither a preset nor a positive rate in bit/s."""


class SimulationError(OrbitliteError):
    """A simulation config, TLE or request that makes no sense."""


class ClusterError(OrbitliteError):
    """A batch of jobs that cannot be run: a backend that is not there (no `sbatch`, the SLURM
    controller down), or a job record that cannot be read."""


class ZooError(OrbitliteError):
    """A zoo grid, member or index that is malformed, or a zoo folder that is not one."""


class NasError(OrbitliteError):
    """A NAS database that is missing or malformed, or a request it cannot answer."""


class InvalidCellError(NasError):
    """A cell outside the NAS-Bench-101 space: a matrix or op list that breaks its rules."""


class CellNotFoundError(NasError):
    """A valid cell, or a budget, that the NAS database has not trained."""
