"""charlm-transformer: nanoGPT's model (checked against Hugging Face's GPT-2), data and step."""

from __future__ import annotations

import math

import pytest
import torch

from descentlab.problems import Amp, train
from descentlab.problems.charlm_transformer import CHARLM_TRANSFORMER, CharGPT, encode

TINY = {"corpus_chars": 20_000, "seq_len": 16, "width": 32, "steps_per_epoch": 5, "n_eval": 2}


def _build(seed: int = 0, **options):
    return CHARLM_TRANSFORMER.build(seed, **{**TINY, **options})


def _adamw(task, lr: float = 1e-3):
    # torch's AdamW: these tests are about the problem, not descentlab's optimizers (or kernels)
    groups = task.param_groups()["model"]
    return {"model": torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), weight_decay=0.1)}


def test_nanogpt_configuration_has_0_80m_parameters():
    """nanoGPT's CPU run on tiny Shakespeare (65 characters) prints "number of parameters: 0.80M".

    Per block: c_attn 128 x 384 + c_proj 128 x 128 + c_fc 128 x 512 + c_proj 512 x 128 = 12 * 128^2
    weights and two LayerNorm weights of 128 (no biases): 196,864. Four blocks, ln_f (128) and
    the token table (65 x 128, shared with the read-out) make 795,904, the number nanoGPT prints
    (it leaves out the position table); with the position table (64 x 128): 804,096.
    """
    model = CharGPT(65)
    total = sum(p.numel() for p in model.parameters())  # the tied weight counts once
    assert 4 * (12 * 128**2 + 2 * 128) + 128 + 65 * 128 == 795_904
    assert total - model.wpe.weight.numel() == 795_904 and total == 804_096
    assert model.lm_head.weight is model.wte.weight
    assert all(p.dim() == 2 or (p.dim() == 1 and p.numel() == 128) for p in model.parameters())
    assert model(torch.zeros(3, 64, dtype=torch.long)).shape == (3, 64, 65)
    with pytest.raises(ValueError, match="longer than the context 64"):
        model(torch.zeros(1, 65, dtype=torch.long))


def test_initialization_is_nanogpts():
    torch.manual_seed(0)
    model = CharGPT(65)
    for name, p in model.named_parameters():
        if p.dim() == 1:
            assert torch.equal(p, torch.ones_like(p)), name  # LayerNorm weights
        else:  # residual projections N(0, (0.02 / sqrt(2 * 4))^2), the others N(0, 0.02^2)
            std = 0.02 / math.sqrt(8) if name.endswith("c_proj.weight") else 0.02
            assert float(p.detach().std()) == pytest.approx(std, rel=0.05), name
            assert abs(float(p.detach().mean())) < 0.1 * std, name


def test_same_logits_as_hugging_face_gpt2():
    """An independent implementation: GPT-2 with exact GELU, biases zero, our weights."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    ours = CharGPT(11, context=8, width=16, layers=2, heads=4).eval()
    config = transformers.GPT2Config(
        vocab_size=11,
        n_positions=8,
        n_embd=16,
        n_layer=2,
        n_head=4,
        activation_function="gelu",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    ref = transformers.GPT2LMHeadModel(config).eval()
    state = ours.state_dict()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            key = name.removeprefix("transformer.")
            if name.endswith(".bias"):
                p.zero_()
            elif key.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
                p.copy_(state[key].T)  # GPT-2's Conv1D stores (in, out)
            else:
                p.copy_(state[key])
    x = torch.randint(11, (3, 8), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ours(x), ref(x).logits, rtol=1e-5, atol=1e-5)


def test_attention_is_causal():
    torch.manual_seed(0)
    model = CharGPT(20, context=12, width=32).eval()
    x = torch.randint(20, (2, 12), generator=torch.Generator().manual_seed(1))
    changed = x.clone()
    changed[:, 7] = (x[:, 7] + 1) % 20
    before, after = model(x), model(changed)
    torch.testing.assert_close(before[:, :7], after[:, :7], rtol=0, atol=0)
    assert not torch.allclose(before[:, 7:], after[:, 7:])


def test_encode():
    ids, vocab = encode("bäca\nb")
    assert vocab == sorted(set("bäca\nb")) == ["\n", "a", "b", "c", "ä"]
    assert ids.dtype == torch.int64 and ids.tolist() == [2, 4, 3, 1, 0, 2]


def test_text_file_split_and_windows(tmp_path):
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    task = _build(text_file=str(path), batch_size=4)
    assert len(task.vocab) == 26
    assert len(task.text["train"]) == 900 and len(task.text["val"]) == 100  # nanoGPT's 90/10
    x, y = next(iter(task.epoch_batches()))
    assert x.shape == y.shape == (4, 16)
    assert torch.equal(x[:, 1:], y[:, :-1])  # the target is the input shifted by one
    assert torch.equal(y[:, -1], (x[:, -1] + 1) % 26)  # the alphabet: the next letter
    for split in ("val", "test"):  # drawn from the held-out text only
        ex, _ = task.eval_windows[split]
        assert ex.shape == (2 * 4, 16)
        assert all("".join(task.vocab[i] for i in row) in text[900:] for row in ex.tolist())


def test_param_groups_decay_weights_not_layer_norms():
    task = _build()
    decayed, plain = task.param_groups()["model"]
    assert "weight_decay" not in decayed and plain["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decayed["params"]) and len(decayed["params"]) == 2 + 4 * 4
    assert all(p.dim() == 1 for p in plain["params"]) and len(plain["params"]) == 2 * 4 + 1
    opt = _adamw(task)["model"]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]


@pytest.mark.parametrize("clip", [1e-3, 0.0])
def test_gradient_is_clipped(clip):
    task = _build(grad_clip=clip)
    opt = {"model": torch.optim.SGD(task.model.parameters(), lr=0.0)}
    task.train_step(opt, next(iter(task.epoch_batches())))
    norm = float(torch.nn.utils.get_total_norm([p.grad for p in task.model.parameters()]))
    if clip:
        assert norm == pytest.approx(clip, rel=1e-4)
    else:
        assert norm > 0.1  # the unclipped gradient of a fresh model is far larger than 1e-3


def test_training_lowers_the_loss():
    task = _build()
    before = {s: task.evaluate(s)["loss"] for s in ("train", "val")}
    assert before["train"] == pytest.approx(math.log(len(task.vocab)), abs=0.05)
    history = train(task, _adamw(task, lr=3e-3), 4, eval_splits=())
    assert history.steps == 20 and not history.diverged
    assert all(history.final[s]["loss"] < before[s] - 0.5 for s in ("train", "val"))
    assert history.final["val"]["bpc"] == pytest.approx(history.final["val"]["loss"] / math.log(2))


def test_same_seed_same_run_other_seed_other_run():
    def run(seed):
        task = _build(seed)
        opts = _adamw(task)
        losses = [task.train_step(opts, b) for b in task.epoch_batches()]
        return task, losses, task.evaluate("val")

    (a, la, ea), (_, lb, eb), (c, lc, ec) = run(1), run(1), run(2)
    assert la == lb and ea == eb
    assert la != lc and ea != ec
    for split in ("train", "val", "test"):  # the evaluation windows do not depend on the seed
        assert all(torch.equal(u, v) for u, v in zip(a.eval_windows[split], c.eval_windows[split]))
    assert not torch.equal(a.eval_windows["val"][0], a.eval_windows["test"][0])
    assert a.evaluate("val") == a.evaluate("val")


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"seq_len": 0}, ValueError, r"seq_len must be an integer >= 1, got 0"),
        ({"width": 2.5}, ValueError, r"width must be an integer >= 1, got 2\.5"),
        ({"width": 30}, ValueError, r"width must be a multiple of the 4 heads, got 30"),
        ({"n_eval": 0}, ValueError, r"n_eval must be an integer >= 1"),
        ({"steps_per_epoch": True}, ValueError, r"steps_per_epoch must be an integer >= 1"),
        ({"grad_clip": -1.0}, ValueError, r"grad_clip must be a number in \[0\.0, inf\], got -1"),
        ({"grad_clip": math.nan}, ValueError, r"grad_clip must be a number"),
        ({"corpus_chars": 100, "seq_len": 16}, ValueError, r"at least 17 characters in the val"),
        ({"text_file": ""}, ValueError, r"text_file must be a non-empty string"),
        ({"text_file": "/no/such/file.txt"}, FileNotFoundError, r"/no/such/file\.txt"),
        ({"dropout": 0.1}, ValueError, r"has no option dropout; its options: corpus_chars"),
        ({"batch_size": "full"}, ValueError, r"cannot take batch_size='full'"),
        ({"batch_size": 0}, ValueError, r"batch_size must be >= 1"),
    ],
)
def test_bad_options_are_errors(options, error, match):
    with pytest.raises(error, match=match):
        _build(**options)


def test_evaluate_rejects_an_unknown_split():
    with pytest.raises(ValueError, match="split must be one of train, val, test, got 'dev'"):
        _build().evaluate("dev")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_clips_the_true_gradient(precision):
    """Under fp16 the scaled gradient is unscaled before clipping, so the step sees norm 1e-3."""
    task = _build(grad_clip=1e-3).to("cpu")
    task.amp = Amp("cpu", precision)
    opt = {"model": torch.optim.SGD(task.model.parameters(), lr=0.0)}
    loss = task.train_step(opt, next(iter(task.epoch_batches())))
    assert loss == pytest.approx(math.log(len(task.vocab)), abs=0.1)
    norm = float(torch.nn.utils.get_total_norm([p.grad for p in task.model.parameters()]))
    assert norm == pytest.approx(1e-3, rel=1e-3)
    assert task.evaluate("val")["loss"] == pytest.approx(loss, abs=0.1)
