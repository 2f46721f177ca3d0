"""Tiny models with known Hessians for the diagnostics tests."""

from __future__ import annotations

import torch
from torch import nn


class Quadratic(nn.Module):
    """``loss = 0.5 (w - c)^T A (w - c)``: Hessian A; the input is ignored."""

    def __init__(self, A: torch.Tensor, w: torch.Tensor, c: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("A", A)
        self.register_buffer("c", torch.zeros_like(w) if c is None else c)
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.w - self.c
        return 0.5 * d @ self.A @ d


def identity_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return output


ONE_BATCH = [(torch.zeros(()), torch.zeros(()))]


def spd(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    eig = torch.linspace(0.5, 10.0, n, dtype=torch.float64)
    return q @ torch.diag(eig) @ q.T
