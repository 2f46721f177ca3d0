"""Zhang et al.'s block heterogeneity: the quadratic's construction, GD against Adam on it, and
the block-spectra demo at a tiny size."""

from __future__ import annotations

import math
from itertools import pairwise

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from descentlab.demos.hessian_heterogeneity import (
    block_quadratic,
    hessian_heterogeneity,
    plot_hessian_heterogeneity,
    plot_quadratic_race,
    quadratic_race,
)


def _block_eigenvalues(H: torch.Tensor, blocks: int) -> list[np.ndarray]:
    n = len(H) // blocks
    return [
        torch.linalg.eigvalsh(H[b * n : (b + 1) * n, b * n : (b + 1) * n]).numpy()
        for b in range(blocks)
    ]


def test_the_two_quadratics_have_the_same_eigenvalues_dealt_differently():
    het = block_quadratic("heterogeneous", blocks=4, size=10, seed=0)
    hom = block_quadratic("homogeneous", blocks=4, size=10, seed=0)
    expected = np.logspace(0, math.log10(5000), 40)
    for H in (het, hom):
        np.testing.assert_allclose(torch.linalg.eigvalsh(H).numpy(), expected, rtol=1e-9)
        torch.testing.assert_close(H, H.T)
        # block-diagonal: nothing outside the 10 x 10 diagonal blocks
        mask = torch.block_diag(*[torch.ones(10, 10)] * 4).bool()
        assert torch.count_nonzero(H[~mask]) == 0
        assert torch.count_nonzero(torch.triu(H[:10, :10], 1)) > 0  # rotated, not diagonal
    het_blocks, hom_blocks = _block_eigenvalues(het, 4), _block_eigenvalues(hom, 4)
    # heterogeneous: the blocks' ranges are disjoint and increasing; each spans a factor 5000^(1/4)
    for lo, hi in pairwise(het_blocks):
        assert lo.max() < hi.min()
    # homogeneous: every block reaches over most of the range (a random deal of 40 values)
    assert all(b.max() / b.min() > 100 for b in hom_blocks)


def test_an_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown model 'vgg'; choose from charlm-transformer"):
        hessian_heterogeneity(("vgg",))


def test_block_quadratic_refuses_bad_arguments():
    with pytest.raises(ValueError, match="case must be"):
        block_quadratic("mixed")
    with pytest.raises(ValueError, match="blocks >= 2"):
        block_quadratic("homogeneous", blocks=1)


def test_gd_loses_to_adam_on_the_heterogeneous_quadratic():
    # tiny size: 4 blocks of 5, 150 steps, one seed, each optimizer at its best rate of the grid
    race = quadratic_race(seeds=(0,), steps=150, size=5, optimizers=("sgd", "adam"))
    final = {(r["case"], r["optimizer"]): r["f(x_150) / f(x_0) median"] for r in race.rows}
    assert final[("heterogeneous", "adam")] < 1e-3 * final[("heterogeneous", "sgd")]
    # Adam's advantage is far smaller where every block has the whole spectrum
    het_gain = final[("heterogeneous", "sgd")] / final[("heterogeneous", "adam")]
    hom_gain = final[("homogeneous", "sgd")] / final[("homogeneous", "adam")]
    assert het_gain > 100 * hom_gain
    # gradient descent sees the same eigenvalues in both cases (only the start's projections on
    # the eigenvectors differ): the same loss within a factor 3
    assert 1 / 3 < final[("homogeneous", "sgd")] / final[("heterogeneous", "sgd")] < 3
    assert race.curves[("heterogeneous", "adam")].shape == (1, 151)
    assert race.curves[("heterogeneous", "adam")][0, 0] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def tiny():
    return hessian_heterogeneity(
        ("charlm-transformer", "digits-mlp"), seeds=(0,), steps=4, layers=1, windows=1, examples=64
    )


def test_hessian_heterogeneity_rows(tiny):
    rows = {(r["model"], r["blocks"]): r for r in tiny.rows}
    # the GPT's weight blocks: wte, wpe and per layer q, k, v, attention out, MLP in and out
    assert rows[("charlm-transformer", "weights")]["n blocks"] == 2 + 6
    assert rows[("charlm-transformer", "all tensors")]["n blocks"] == 2 + 6 + 2 + 1  # + LN gains
    assert rows[("digits-mlp", "weights")]["n blocks"] == 3
    assert (
        rows[("digits-mlp", "all tensors")]["parameters"]
        == 64 * 128 + 128 + 128 * 64 + 64 + 640 + 10
    )
    for r in tiny.rows:
        for key in ("JS0 (paper sigma) median", "JS0 (sigma = 0.1 rms) median"):
            assert 0 <= r[key] <= math.log(2) + 1e-12
    assert set(tiny.spectra["charlm-transformer"]["weights"]) <= set(
        tiny.spectra["charlm-transformer"]["all tensors"]
    )
    assert "h.0.attn.c_attn.weight:q" in tiny.spectra["charlm-transformer"]["weights"]


def test_figures(tmp_path, tiny):
    a = plot_hessian_heterogeneity(tiny, tmp_path / "blocks.png")
    race = quadratic_race(seeds=(0, 1), steps=5, size=2, optimizers=("sgd",))
    b = plot_quadratic_race(race, tmp_path / "race.png")
    assert a.exists() and b.exists()
