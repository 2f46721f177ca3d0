"""What one call of ``check_optimizer`` checks, resolved once, and the helpers every check shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ._compare import Where
from ._data import Groups, make_groups, set_grads, with_hparams
from ._optimizers import Factory, ReferenceFn

# (rtol, atol) per dtype: float64 tight (the paths round differently, and 100 steps compound it);
# float32 looser; half precision loosest.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-10, 1e-12),
    torch.complex128: (1e-10, 1e-12),
    torch.float32: (1e-4, 1e-5),
    torch.complex64: (1e-4, 1e-5),
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (5e-2, 1e-2),
}


@dataclass(frozen=True)
class Spec:
    """The optimizer, its reference and the options of one ``check_optimizer`` call."""

    factory: Factory
    name: str
    reference: Factory | ReferenceFn | None
    hparams: tuple[Mapping[str, Any], ...]
    steps: int
    dtypes: tuple[torch.dtype, ...]
    tolerances: Mapping[torch.dtype, tuple[float, float]]
    paths: Mapping[str, Mapping[str, Any]]
    aliases: Mapping[str, str]
    seed: int
    compile_backend: str
    compile_steps: int
    skipped: dict[str, str] = field(default_factory=dict)  # parts skipped, with why (the report)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the checks that run once (the first of ``dtypes``)."""
        return self.dtypes[0]

    def tol(self, dtype: torch.dtype) -> tuple[float, float]:
        return self.tolerances.get(dtype, TOLERANCES.get(dtype, (1e-4, 1e-5)))

    def groups(self, dtype: torch.dtype | None = None, device: str = "cpu") -> Groups:
        return make_groups(dtype or self.dtype, self.seed, len(self.hparams), device)

    def build(
        self,
        groups: Groups,
        path: Mapping[str, Any] | None = None,
        hparams: Sequence[Mapping[str, Any]] | None = None,
    ) -> torch.optim.Optimizer:
        """The optimizer under test on ``groups`` (the class's default path unless ``path``)."""
        return self.factory(with_hparams(groups, hparams or self.hparams), **(path or {}))

    @property
    def readable(self) -> dict[str, Any]:
        """The first path's keywords: what the reference is compared with."""
        return dict(next(iter(self.paths.values())))


def short(dtype: torch.dtype) -> str:
    """``float32`` for ``torch.float32``."""
    return str(dtype).removeprefix("torch.")


def run(where: Where, opt: Any, groups: Groups, steps: range) -> None:
    """Step ``opt`` with the standard gradients over ``steps``; an exception fails ``where``."""
    for t in steps:
        set_grads(groups, t)
        with where.at(step=t).running():
            opt.step()


def snapshot(opt: torch.optim.Optimizer, groups: Groups) -> list[Any]:
    """Copies of every parameter and its state (to check that something did not change)."""
    out = []
    for g in groups:
        for p in g:
            state = {
                k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state.get(p, {}).items()
            }
            out.append((p.detach().clone(), state))
    return out
