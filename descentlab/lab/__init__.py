"""The lab: experiments (TOML) x tuning x seeds, run locally or on Ray, stored and reported.

* :mod:`.spec` reads and validates an experiment file;
* :mod:`.tuning` plans the trials: an equal learning-rate budget per optimizer (DeepOBS);
* :mod:`.axes` is the table of axes (their parsing, hooks and rules), :mod:`.tricks` what each does;
* :mod:`.loop` runs one trial; :mod:`.sweep` runs them all (process pool or Ray) into the store;
* :mod:`.devices` says where: CPU, a GPU (several trials per GPU) or Apple's MPS;
* :mod:`.builtin` is the experiment of ``descentlab compare``.
"""

from .builtin import default_experiment
from .devices import DeviceError
from .loop import run_trial
from .spec import Experiment, OptimizerSpec, ProblemSpec, SpecError, Tuning, load, parse
from .sweep import SweepSummary, run_experiment

__all__ = [
    "DeviceError",
    "Experiment",
    "OptimizerSpec",
    "ProblemSpec",
    "SpecError",
    "SweepSummary",
    "Tuning",
    "default_experiment",
    "load",
    "parse",
    "run_experiment",
    "run_trial",
]
