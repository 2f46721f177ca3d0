"""Problems for the lab: small, real training tasks that run offline on CPU, deterministic given a
seed.

Built in (``descentlab problems`` lists them): ``digits-logreg``, ``digits-mlp``, ``digits-cnn``,
``mnist1d-mlp``, ``mnist1d-cnn`` (needs the ``mnist1d`` package), ``charlm-lstm``,
``charlm-transformer`` (nanoGPT's CPU character GPT),
``wilson-linreg``, ``gan-mog``, ``cartpole-pg`` (needs ``gymnasium``), and, from files the user
has under ``data_dir``, ``mnist-cnn``, ``fashion-mnist-cnn``, ``cifar10-resnet20``. Every name is
listed even when its optional package or files are missing; ``build`` then raises ``ImportError``
(naming the extra) or ``FileNotFoundError`` (naming the paths and how to get the files).

The contract (used by the lab's engine, the schedules and the viz areas):

- :func:`names` lists the built-in problems; :func:`get` returns one :class:`Problem` by name, or
  imports ``"module:function"`` (a user's function returning a ``Problem``, or a ``Problem``
  object itself). An unknown name raises ``ValueError`` listing the closest names.
- :class:`Problem` (frozen): ``name``, ``description``, ``source``, ``kind`` (``"supervised"``,
  ``"gan"`` or ``"rl"``), ``budget`` (:class:`Budget`: ``epochs``, ``batch_size``), ``target``
  (:class:`Target`: ``metric``, ``value``, ``higher_is_better`` and, an extension, ``split``,
  default ``"val"``, plus ``reached(value)``), ``main_metric``, ``higher_is_better``, ``axes``,
  ``factory`` and ``build(seed, *, data_dir=None, batch_size=None, **options) -> Task``.
  Extensions: ``axes`` is the set of keyword options ``build`` accepts besides the seed
  (``batch_size``, ``data_dir`` and the problem's own, e.g. ``n_train`` for smaller data in
  tests, ``width``, ``text_file``); ``build`` rejects any other option with a ``ValueError``
  naming the allowed ones. ``factory(seed, *, data_dir, batch_size, **options)`` is what
  ``build`` calls (``batch_size`` already defaulted from the budget): a user's problem supplies
  it.
- :class:`Task` (a protocol): ``model``, ``param_groups()`` (``{"model": params}``, or
  ``{"generator": ..., "discriminator": ...}`` for GANs), ``train_loader`` (iterable, with
  ``len()`` = steps per epoch), ``epoch_batches()`` (one epoch, reshuffled or redrawn by the
  task's own seeded generator), ``train_step(optimizers, batch) -> float`` and
  ``evaluate(split) -> dict`` with ``split`` in ``"train"``, ``"val"``, ``"test"``, returning
  ``"loss"`` and the problem's metrics (``main_metric`` among them). Supervised tasks
  (:class:`SupervisedTask`) yield ``(x, y)`` and have ``criterion``. A GAN batch is ``(real,
  noise)`` and its step is one discriminator then one generator step (returning the sum of their
  losses); an RL batch is the environment seeds of the episodes one step plays (``batch_size`` =
  episodes per step). GAN and RL tasks have no held-out data: their splits are fixed, different
  evaluation draws.
- :func:`train` (``task, optimizers, epochs, on_step=None, *, eval_splits=("val", "test"),
  final_splits=SPLITS``) runs a task and returns a :class:`History` (per-step train loss,
  per-epoch evaluations, final evaluations, train and wall time, divergence: a NaN/inf training
  loss stops the run, never raises); :func:`optimizers_for` (``task, name, **hparams``) builds one
  registry optimizer per param group, at the registry's default LR unless ``lr`` is given.
- Order and batch size (supervised problems): ``build(seed, batch_size="full")`` trains on the
  whole training set in one batch; :meth:`SupervisedTask.set_order` (``shuffle``, ``curriculum``:
  a :class:`Curriculum` of per-example scores, e.g. :func:`reference_difficulty`) chooses the
  order of the examples, see :mod:`descentlab.problems.ordering`.
- Devices and precision: a task's ``to(device)`` moves its model and data (supervised tasks keep
  small datasets on the device as whole tensors, :class:`IndexBatches`; image datasets from
  ``data_dir`` stream pinned batches, :class:`StreamedBatches`); its ``amp`` attribute (an
  :class:`Amp`, ``None`` by default) runs its steps under autocast (bf16, or fp16 with a
  GradScaler). A task without ``to`` runs on the CPU only.
- Small models run fastest with one torch thread (``torch.set_num_threads(1)``); the problems do
  not set it.
"""

from ._base import FULL_BATCH, SPLITS, Budget, DrawnEpoch, Problem, SupervisedTask, Target, Task
from ._device import Amp, IndexBatches, StreamedBatches
from ._options import check_option
from ._train import History, optimizers_for, train
from .ordering import SHUFFLES, Curriculum, OrderSampler, reference_difficulty
from .registry import PROBLEMS, get, names

__all__ = [
    "FULL_BATCH",
    "PROBLEMS",
    "SHUFFLES",
    "SPLITS",
    "Amp",
    "Budget",
    "Curriculum",
    "DrawnEpoch",
    "History",
    "IndexBatches",
    "OrderSampler",
    "Problem",
    "StreamedBatches",
    "SupervisedTask",
    "Target",
    "Task",
    "check_option",
    "get",
    "names",
    "optimizers_for",
    "reference_difficulty",
    "train",
]
