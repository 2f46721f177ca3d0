"""A character-level GPT: the lecture's "Team Adam for NLP" case on the model family it is about.

The model and the protocol are nanoGPT's CPU configuration of ``shakespeare_char`` (Karpathy,
github.com/karpathy/nanoGPT, README "I only have a macbook"): a decoder-only transformer of 4
pre-LayerNorm blocks, 4 heads, width 128, context 64, no dropout, no biases (nanoGPT's
``bias=False``), the read-out tied to the token embedding; trained on batches of 12 windows drawn
at random offsets of the training text. For each block, with causal self-attention ``attn`` and
``mlp(h) = W2 gelu(W1 h)`` (``W1``: width -> 4 width)::

    x_0 = E[tokens] + P[positions]                                          (1)
    x   = x + attn(ln_1(x))                                                 (2)
    x   = x + mlp(ln_2(x))                                                  (3)
    logits = ln_f(x) E^T                                                    (4)

Initialization as nanoGPT's: every linear and embedding weight ~ N(0, 0.02^2), the two residual
projections of each block (the attention's and the MLP's output) ~ N(0, (0.02 / sqrt(2 L))^2)
with L = 4 blocks (GPT-2's scaling, Radford et al. 2019), LayerNorm weights 1. nanoGPT's optimizer
puts the 2-D weights in a decayed and the LayerNorm weights in an undecayed group:
``param_groups()`` returns the same two groups (the second with ``weight_decay = 0``), so AdamW's
``weight_decay`` applies as nanoGPT applies it. Gradients are clipped to norm ``grad_clip``
(nanoGPT's 1.0; 0 turns it off) before every step. With tiny Shakespeare's 65 characters the
model has 804,096 parameters, 795,904 without the position table (the "0.80M" nanoGPT prints).

Data: ``text_file`` (for example tiny Shakespeare, nanoGPT's corpus) or, by default, the Python
standard library's source of :func:`descentlab.problems.charlm.load_corpus`, cut at
``corpus_chars`` characters (default 1,115,394: the length of tiny Shakespeare). The vocabulary
is the sorted set of the text's characters; the first 90% is the training text, the last 10% the
held-out text (nanoGPT's split). nanoGPT has no third split; here:

* ``"train"`` and ``"val"``: the mean next-character cross-entropy (nats) over ``n_eval``
  batches of ``batch_size`` windows at random offsets of the training or held-out text, as
  nanoGPT's ``estimate_loss`` (``eval_iters``: 200 by default, 20 in its CPU run), but drawn once
  from a fixed generator, so every evaluation and every seed sees the same windows;
* ``"test"``: as ``"val"``, another fixed draw of windows from the same held-out text (a second
  estimate of the same quantity, not an independent text: select on one, report the other
  knowing that).

An epoch is ``steps_per_epoch`` batches (default 250, nanoGPT's ``eval_interval``), so the budget
of 8 epochs is nanoGPT's 2,000 iterations, evaluated where nanoGPT evaluates. The seed sets the
initialization and the training windows. Metrics: ``loss`` (nats, nanoGPT's number) and ``bpc``
(bits per character, ``loss / ln 2``, comparable with ``charlm-lstm``).

Its kind is ``"lm"``: ``(x, y)`` batches as a supervised task's, but drawn, not taken from a fixed
set of examples, so what needs one (``batch_size="full"``, shuffling, curricula) does not apply.
``to(device)`` moves the model, the text and the evaluation windows; the offsets of the windows
stay drawn on the CPU, so every device trains on the same windows. ``amp`` (the lab's precision)
runs the forward passes under autocast; under fp16 the gradient is unscaled before it is clipped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..optim.param_groups import param_groups as decay_groups
from ._base import SPLITS, Budget, DrawnEpoch, Problem, Target, seeded_generator
from ._device import Amp, autocast
from ._options import check_option
from .charlm import load_corpus

__all__ = ["CHARLM_TRANSFORMER", "CharGPT", "encode"]

_CHARS = 1_115_394  # tiny Shakespeare's length: the built-in corpus gets as much text
_SEQ, _WIDTH, _LAYERS, _HEADS = 64, 128, 4, 4
_STD = 0.02  # nanoGPT's (and GPT-2's) initialization
# The evaluation windows: fixed draws, the same for every seed (and the split each is drawn from).
_EVAL_SEEDS = {"train": 1_000_003, "val": 1_000_033, "test": 1_000_037}
_EVAL_TEXT = {"train": "train", "val": "val", "test": "val"}
_EVAL_CHUNK = 256  # windows per forward pass in evaluation (the mean does not depend on it)


def encode(text: str) -> tuple[torch.Tensor, list[str]]:
    """``(ids, vocab)``: the text as int64 indices into its sorted distinct characters."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    points, ids = np.unique(codes, return_inverse=True)  # sorted code points = sorted(set(text))
    return torch.from_numpy(ids.astype(np.int64)), [chr(c) for c in points]


class _Attention(nn.Module):
    """Causal multi-head self-attention; ``c_attn``/``c_proj`` as nanoGPT names them."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(width, 3 * width, bias=False)
        self.c_proj = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (
            z.view(b, t, self.heads, c // self.heads).transpose(1, 2)
            for z in self.c_attn(x).split(c, dim=2)
        )
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class _Block(nn.Module):
    """A pre-LayerNorm transformer block, equations (2) and (3)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, bias=False)
        self.attn = _Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width, bias=False)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width, bias=False))
        self.mlp.add_module("gelu", nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))  # (2)
        return x + self.mlp(self.ln_2(x))  # (3)


class CharGPT(nn.Module):
    """nanoGPT's GPT without dropout and biases: ``(B, T)`` indices to ``(B, T, V)`` logits.

    Parameter names follow nanoGPT's ``model.py`` (``wte``, ``wpe``, ``h.<i>.attn.c_attn``, ...,
    ``ln_f``, ``lm_head``), the read-out ``lm_head`` sharing its weight with ``wte``.
    """

    def __init__(
        self,
        vocab: int,
        *,
        context: int = _SEQ,
        width: int = _WIDTH,
        layers: int = _LAYERS,
        heads: int = _HEADS,
    ) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width must be a multiple of the {heads} heads, got {width}")
        self.context = context
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(context, width)
        self.h = nn.ModuleList(_Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width, bias=False)
        self.lm_head = nn.Linear(width, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying, as nanoGPT (Press & Wolf 2017)
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, 0.0, _STD)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # the residual projections: GPT-2's 1/sqrt(2L)
                nn.init.normal_(p, 0.0, _STD / math.sqrt(2 * layers))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        if t > self.context:
            raise ValueError(f"sequence of {t} tokens is longer than the context {self.context}")
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))  # (1)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))  # (4)


def _windows(
    ids: torch.Tensor, starts: torch.Tensor, seq_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The windows ``ids[s : s + seq_len]`` and their next characters, as nanoGPT's get_batch."""
    w = ids[starts[:, None] + torch.arange(seq_len + 1, device=ids.device)]
    return w[:, :-1], w[:, 1:]


def _cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, -2), target.flatten())


class CharTransformerTask:
    """The built problem (see the module docstring): windows drawn from a text, one optimizer."""

    def __init__(
        self,
        seed: int,
        *,
        data_dir: str | None,
        batch_size: int,
        text_file: str | None = None,
        corpus_chars: int = _CHARS,
        seq_len: int = _SEQ,
        width: int = _WIDTH,
        steps_per_epoch: int = 250,
        n_eval: int = 200,
        grad_clip: float = 1.0,
    ) -> None:
        del data_dir  # the corpus is on every machine, or text_file
        for name, value in (
            ("corpus_chars", corpus_chars),
            ("seq_len", seq_len),
            ("width", width),
            ("steps_per_epoch", steps_per_epoch),
            ("n_eval", n_eval),
            ("grad_clip", grad_clip),
            *(() if text_file is None else (("text_file", text_file),)),
        ):
            check_option(name, value)
        ids, self.vocab = encode(load_corpus(text_file=text_file, chars=corpus_chars))
        cut = int(0.9 * len(ids))
        self.text = {"train": ids[:cut], "val": ids[cut:]}
        for split, part in self.text.items():
            if len(part) < seq_len + 1:
                raise ValueError(
                    f"seq_len={seq_len} needs at least {seq_len + 1} characters in the {split} "
                    f"text, which has {len(part)} (corpus of {len(ids)}); lower seq_len or "
                    "raise corpus_chars"
                )
        self.batch_size, self.seq_len, self.grad_clip = batch_size, seq_len, float(grad_clip)
        torch.manual_seed(seed)
        self.model = CharGPT(len(self.vocab), context=seq_len, width=width)
        self.generator = seeded_generator(seed)
        self.device = torch.device("cpu")  # to() moves the task
        self.amp: Amp | None = None  # mixed precision, set by the lab's precision
        self.train_loader = DrawnEpoch(steps_per_epoch, lambda: self.draw("train"))
        self.eval_windows = {
            split: self.draw(text, n_eval * batch_size, seeded_generator(_EVAL_SEEDS[split]))
            for split, text in _EVAL_TEXT.items()
        }

    def draw(
        self, text: str, n: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` (default ``batch_size``) windows at random offsets of ``text`` (``"train"`` or
        ``"val"``), from the task's generator unless ``generator`` is given."""
        ids = self.text[text]
        n = self.batch_size if n is None else n
        g = self.generator if generator is None else generator
        starts = torch.randint(len(ids) - self.seq_len, (n,), generator=g)
        return _windows(ids, starts.to(ids.device, non_blocking=True), self.seq_len)

    def to(self, device: torch.device | str) -> CharTransformerTask:
        """Move the model, the text and the evaluation windows to ``device``; returns the task."""
        self.device = torch.device(device)
        self.model.to(self.device)
        self.text = {k: ids.to(self.device) for k, ids in self.text.items()}
        self.eval_windows = {
            k: (x.to(self.device), y.to(self.device)) for k, (x, y) in self.eval_windows.items()
        }
        return self

    def param_groups(self) -> dict[str, list[dict]]:
        """One optimizer; 2-D weights decayed, LayerNorm weights not (nanoGPT's groups)."""
        groups = decay_groups(self.model, 0.0)
        del groups[0]["weight_decay"]  # the decayed group takes the optimizer's weight_decay
        return {"model": groups}

    def epoch_batches(self) -> DrawnEpoch:
        """One epoch of ``steps_per_epoch`` freshly drawn ``(x, y)`` batches."""
        return self.train_loader

    def train_step(
        self,
        optimizers: Mapping[str, torch.optim.Optimizer],
        batch: tuple[torch.Tensor, torch.Tensor],
    ) -> float:
        """zero_grad, loss, backward, clip the gradient norm, step; returns the batch loss."""
        opt = optimizers["model"]
        x, y = batch
        self.model.train()
        opt.zero_grad(set_to_none=True)
        with autocast(self.amp):
            loss = _cross_entropy(self.model(x), y)
        if self.amp is None:
            loss.backward()
        else:
            self.amp.backward(loss)
            if self.amp.scaler is not None:
                self.amp.scaler.unscale_(opt)  # clip the true gradient (torch's AMP recipe)
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        if self.amp is None:
            opt.step()
        else:
            self.amp.step(opt)
            self.amp.update()
        return float(loss.detach())

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, float]:
        """``loss`` (mean cross-entropy, nats) and ``bpc`` on the split's fixed windows."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        x, y = self.eval_windows[split]
        was_training = self.model.training
        self.model.eval()
        total = 0.0
        for i in range(0, len(x), _EVAL_CHUNK):
            with autocast(self.amp):
                logits = self.model(x[i : i + _EVAL_CHUNK])
            target = y[i : i + _EVAL_CHUNK].flatten()
            total += float(F.cross_entropy(logits.float().flatten(0, -2), target, reduction="sum"))
        self.model.train(was_training)
        loss = total / y.numel()
        return {"loss": loss, "bpc": loss / math.log(2)}


CHARLM_TRANSFORMER = Problem(
    name="charlm-transformer",
    description=(
        "Character-level GPT in nanoGPT's CPU configuration (4 layers, 4 heads, width 128, "
        "context 64, no dropout, tied embeddings) on the Python standard library's source, or "
        "on a text file such as tiny Shakespeare"
    ),
    source=(
        "nanoGPT (Karpathy) shakespeare_char, CPU configuration: random windows of the first 90%,"
        " held-out last 10%; nanoGPT reports val loss 1.88 after 2,000 AdamW iterations"
    ),
    kind="lm",
    budget=Budget(epochs=8, batch_size=12),
    target=Target("loss", 1.88, higher_is_better=False),
    main_metric="loss",
    higher_is_better=False,
    axes=frozenset(
        {
            "batch_size",
            "data_dir",
            "text_file",
            "corpus_chars",
            "seq_len",
            "width",
            "steps_per_epoch",
            "n_eval",
            "grad_clip",
        }
    ),
    factory=CharTransformerTask,
)
