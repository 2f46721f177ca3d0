"""Problems for the lab: small, real training tasks that run offline on CPU, deterministic given a
seed.

The contract (used by the lab's engine, the schedules and the viz areas):

- :func:`names` lists the built-in problems; :func:`get` returns one :class:`Problem` by name, or
  imports ``"module:function"`` (a user's function returning a ``Problem``, or a ``Problem``
  object itself). An unknown name raises ``ValueError`` listing the closest names.
- :class:`Problem` (frozen): ``name``, ``description``, ``source``, ``kind`` (``"supervised"``,
  ``"gan"`` or ``"rl"``), ``budget`` (:class:`Budget`: ``epochs``, ``batch_size``), ``target``
  (:class:`Target`: ``metric``, ``value``, ``higher_is_better`` and, an extension, ``split``,
  default ``"val"``, plus ``reached(value)``), ``main_metric``, ``higher_is_better``, ``axes`` and
  ``build(seed, *, data_dir=None, batch_size=None, **options) -> Task``.
  Extension: ``axes`` is the set of keyword options ``build`` accepts besides the seed
  (``batch_size``, ``data_dir`` and the problem's own, e.g. ``n_train`` for smaller data in
  tests); ``build`` rejects any other option with a ``ValueError``.
- :class:`Task` (a protocol): ``model``, ``param_groups()`` (``{"model": params}``, or
  ``{"generator": ..., "discriminator": ...}`` for GANs), ``train_loader``, ``epoch_batches()``
  (one epoch, reshuffled by the task's own seeded generator), ``train_step(optimizers, batch) ->
  float`` and ``evaluate(split) -> dict`` with ``split`` in ``"train"``, ``"val"``, ``"test"``,
  returning ``"loss"`` and the problem's metrics. Supervised tasks (:class:`SupervisedTask`) also
  have ``criterion``.
- :func:`train` (``task, optimizers, epochs, on_step=None``) runs a task and returns a
  :class:`History` (per-step train loss, per-epoch evaluations, final evaluations, times,
  divergence); :func:`optimizers_for` builds one registry optimizer per param group.
"""

from ._base import SPLITS, Budget, Problem, SupervisedTask, Target, Task
from ._train import History, optimizers_for, train
from .registry import PROBLEMS, get, names

__all__ = [
    "PROBLEMS",
    "SPLITS",
    "Budget",
    "History",
    "Problem",
    "SupervisedTask",
    "Target",
    "Task",
    "get",
    "names",
    "optimizers_for",
    "train",
]
