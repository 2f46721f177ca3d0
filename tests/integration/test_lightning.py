"""Lightning with descentlab optimizers: resume from a checkpoint (``ckpt_path``), bit for bit,
in full precision and in bf16 mixed precision on the CPU (Lightning runs "16-mixed" as bf16 on
the CPU, so fp16 is not tested here)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

L = pytest.importorskip("lightning")

import descentlab  # noqa: E402

SAMPLES, BATCH, EPOCHS = 24, 8, 4  # 3 steps per epoch; Lightning resumes at an epoch's end
X = torch.randn(SAMPLES, 6, generator=torch.Generator().manual_seed(0))
Y = X @ torch.linspace(-1, 1, 6).unsqueeze(1) + 0.1
OPTIMIZERS = {
    "adamw": {},
    "swats": {"switch_tol": 0.1},
    "lookahead(adam)": {"k": 2},
    "noisy(adam)": {"eta": 0.01, "generator": 5},
}


class Regression(L.LightningModule):
    def __init__(self, opt_name: str) -> None:
        super().__init__()
        self.opt_name = opt_name
        self.net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))
        self.compute_dtype: torch.dtype | None = None  # what the precision plugin ran in

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self.net(x)
        self.compute_dtype = out.dtype
        return nn.functional.mse_loss(out.float(), y)

    def configure_optimizers(self):
        opt = descentlab.create(
            self.opt_name, self.parameters(), lr=0.01, **OPTIMIZERS[self.opt_name]
        )
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def train_dataloader(self):
        data = torch.utils.data.TensorDataset(X, Y)
        return torch.utils.data.DataLoader(data, batch_size=BATCH, shuffle=False)


PRECISIONS = {"32-true": torch.float32, "bf16-mixed": torch.bfloat16}


def _fit(opt_name: str, precision: str, out, ckpt_path=None) -> Regression:
    """Train for EPOCHS; the uninterrupted run (no ``ckpt_path``) saves after every epoch. The
    resumed one starts from other weights, so only a real load can make it end the same."""
    torch.manual_seed(0 if ckpt_path is None else 1)
    module = Regression(opt_name)
    save = (
        [L.pytorch.callbacks.ModelCheckpoint(dirpath=out, save_top_k=-1)] if not ckpt_path else []
    )
    trainer = L.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        devices=1,
        precision=precision,
        default_root_dir=out,
        logger=False,
        callbacks=save,
        enable_checkpointing=bool(save),
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
    )
    trainer.fit(module, ckpt_path=ckpt_path)
    assert type(trainer.optimizers[0]).__module__.startswith("descentlab.optim.")
    assert trainer.global_step == EPOCHS * SAMPLES // BATCH
    assert module.compute_dtype is PRECISIONS[precision]
    return module


# The resumed run saves nothing, so it has no ModelCheckpoint for the one the checkpoint names.
@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")
@pytest.mark.parametrize("precision", list(PRECISIONS))
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_resume_from_checkpoint_is_bit_exact(tmp_path, opt_name, precision):
    whole = _fit(opt_name, precision, tmp_path / "whole")
    checkpoints = sorted((tmp_path / "whole").glob("epoch=1-*.ckpt"))  # after 2 of the 4 epochs
    assert len(checkpoints) == 1, list((tmp_path / "whole").iterdir())
    resumed = _fit(opt_name, precision, tmp_path / "resumed", ckpt_path=checkpoints[0])
    expected, got = whole.state_dict(), resumed.state_dict()
    assert list(expected) == list(got)
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    torch.manual_seed(0)
    start = Regression(opt_name).state_dict()
    assert not torch.equal(start["net.0.weight"], expected["net.0.weight"]), "nothing trained"
