"""Hugging Face ``Trainer`` with descentlab optimizers: resume from a checkpoint, bit for bit.

Tiny BERT and GPT-2 built from configs in code and random token data made here: nothing is
downloaded (the hub is switched off).
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"  # read when huggingface_hub is imported
os.environ["TRANSFORMERS_OFFLINE"] = "1"
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

import descentlab  # noqa: E402

VOCAB, LENGTH, SAMPLES, BATCH = 100, 16, 12, 4  # 3 steps per epoch
TOTAL, SAVE_AT = 7, 4  # the checkpoint lies inside the second epoch
MODELS = {
    "bert": lambda: transformers.BertForMaskedLM(
        transformers.BertConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=LENGTH,
        )
    ),
    "gpt2": lambda: transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            vocab_size=VOCAB, n_positions=LENGTH, n_embd=32, n_layer=2, n_head=2
        )
    ),
}
OPTIMIZERS = {  # name: hyperparameters besides lr
    "adamw": {"weight_decay": 0.01},
    "adabound": {"final_lr": 0.05},
    "swats": {"switch_tol": 0.1},
    "lookahead(adam)": {"k": 3},
    "noisy(adam)": {"eta": 0.01, "generator": 5},
}


class Tokens(torch.utils.data.Dataset):
    """Random token sequences; the labels are the inputs (masked and causal LM losses)."""

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, VOCAB, (SAMPLES, LENGTH), generator=gen)

    def __len__(self) -> int:
        return SAMPLES

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def _model(model_name: str, seed: int):
    transformers.set_seed(seed)
    return MODELS[model_name]()


def _trainer(model_name: str, opt_name: str, out, save: bool):
    """The uninterrupted run saves; the resumed one starts from other weights (seed 1), so only
    a real load of the checkpoint can make it end where the uninterrupted run does."""
    model = _model(model_name, seed=0 if save else 1)
    groups = descentlab.optim.param_groups(model, weight_decay=0.01)
    opt = descentlab.create(opt_name, groups, lr=1e-2, **OPTIMIZERS[opt_name])
    sched = transformers.get_linear_schedule_with_warmup(opt, 2, TOTAL)
    args = transformers.TrainingArguments(
        output_dir=str(out),
        max_steps=TOTAL,
        per_device_train_batch_size=BATCH,
        save_strategy="steps" if save else "no",
        save_steps=SAVE_AT,
        logging_strategy="no",
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
        disable_tqdm=True,
    )
    return transformers.Trainer(
        model=model, args=args, train_dataset=Tokens(), optimizers=(opt, sched)
    )


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("model_name", list(MODELS))
def test_resume_from_checkpoint_is_bit_exact(tmp_path, model_name, opt_name):
    whole = _trainer(model_name, opt_name, tmp_path / "whole", save=True)
    whole.train()
    inner = getattr(whole.optimizer, "optimizer", whole.optimizer)  # accelerate's wrapper
    assert type(inner).__module__.startswith("descentlab.optim.")
    checkpoint = tmp_path / "whole" / f"checkpoint-{SAVE_AT}"
    assert (checkpoint / "optimizer.pt").is_file()
    resumed = _trainer(model_name, opt_name, tmp_path / "resumed", save=False)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.state.global_step == whole.state.global_step == TOTAL
    expected, got = whole.model.state_dict(), resumed.model.state_dict()
    assert list(expected) == list(got)
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    start = _model(model_name, seed=0).state_dict()
    assert any(not torch.equal(start[k], expected[k]) for k in start), "nothing trained"
