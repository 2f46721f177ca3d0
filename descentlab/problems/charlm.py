"""A character-level LSTM language model: the lecture's "Team Adam for NLP" case.

The model is an embedding, a one-layer LSTM and a linear read-out predicting the next character
(in the spirit of Karpathy's char-rnn and of the character-level language model Wilson et al.
2017 used to compare optimizers). The metric is bits per character, ``bpc = loss / ln 2`` of the
mean next-character cross-entropy.

Corpus: by default the Python standard library's own source, which every machine with Python
has offline: the top-level ``*.py`` files of ``sysconfig.get_paths()["stdlib"]``, sorted by name,
concatenated and cut at ``corpus_chars`` characters. (The text therefore depends on the Python
version: compare runs on one interpreter.) Or ``text_file``, a UTF-8 text file of the user's.
The text is split contiguously 90/5/5 into train/val/test and cut into sequences of
``seq_len + 1`` characters (input: the first ``seq_len``, target: the last ``seq_len``); the
vocabulary is the set of characters of the whole text. The seed sets the initialisation and the
order of the training sequences.

Option ``dropout`` (default 0, see :mod:`descentlab.problems._options`): dropout on the LSTM's
outputs before the read-out (where Zaremba, Sutskever & Vinyals 2014, "Recurrent Neural Network
Regularization", put it: on the non-recurrent connections). The LSTM has no place for
``normalization``.
"""

from __future__ import annotations

import functools
import math
import sysconfig
from pathlib import Path

import torch
from torch import nn

from ._base import Budget, Problem, SupervisedTask, Target
from ._options import check_dropout

__all__ = ["CHARLM_LSTM", "CharLSTM", "load_corpus", "stdlib_text"]

_CHARS, _SEQ, _HIDDEN = 200_000, 64, 128


@functools.lru_cache(maxsize=4)
def stdlib_text(chars: int = _CHARS) -> str:
    """The first ``chars`` characters of the sorted top-level ``*.py`` files of the stdlib."""
    parts, total = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_bytes().decode("utf-8", errors="replace")
        parts.append(text)
        total += len(text)
        if total >= chars:
            break
    return "".join(parts)[:chars]


def load_corpus(*, text_file: str | None = None, chars: int = _CHARS) -> str:
    """The user's text file (whole, or cut at ``chars``) or the standard-library corpus."""
    if text_file is None:
        return stdlib_text(chars)
    path = Path(text_file)
    if not path.is_file():
        raise FileNotFoundError(f"charlm-lstm: text file {str(path)!r} does not exist")
    return path.read_text(encoding="utf-8", errors="replace")[:chars]


class CharLSTM(nn.Module):
    """Embedding -> one-layer LSTM -> linear read-out: ``(B, T)`` indices to ``(B, T, V)`` logits.

    ``dropout > 0`` adds ``nn.Dropout`` on the LSTM's outputs; ``0`` adds no module.
    """

    def __init__(
        self, vocab: int, *, hidden: int = _HIDDEN, embed: int = 32, dropout: float = 0.0
    ) -> None:
        super().__init__()
        p = check_dropout(dropout)
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)
        self.drop = nn.Dropout(p) if p > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.embed(x))
        return self.out(h if self.drop is None else self.drop(h))


def _sequences(ids: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = (len(ids) - 1) // seq_len
    if n < 1:
        raise ValueError(f"text of {len(ids)} characters is too short for seq_len={seq_len}")
    x = ids[: n * seq_len].view(n, seq_len)
    y = ids[1 : n * seq_len + 1].view(n, seq_len)
    return x, y


def _cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(output.flatten(0, -2), target.flatten())


def _bpc(metrics: dict[str, float]) -> dict[str, float]:
    return {"bpc": metrics["loss"] / math.log(2)}


def _build(
    seed: int,
    *,
    data_dir: str | None,
    batch_size: int,
    text_file: str | None = None,
    corpus_chars: int = _CHARS,
    seq_len: int = _SEQ,
    hidden: int = _HIDDEN,
    dropout: float = 0.0,
) -> SupervisedTask:
    del data_dir  # the corpus is on every machine, or text_file
    text = load_corpus(text_file=text_file, chars=corpus_chars)
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    a, b = int(0.9 * len(ids)), int(0.95 * len(ids))
    splits = {
        "train": _sequences(ids[:a], seq_len),
        "val": _sequences(ids[a:b], seq_len),
        "test": _sequences(ids[b:], seq_len),
    }
    torch.manual_seed(seed)
    return SupervisedTask(
        CharLSTM(len(vocab), hidden=hidden, dropout=dropout),
        splits,
        _cross_entropy,
        seed=seed,
        batch_size=batch_size,
        derived=_bpc,
    )


CHARLM_LSTM = Problem(
    name="charlm-lstm",
    description=(
        "Character-level LSTM language model (embedding 32, LSTM 128, sequences of 64) on "
        "the Python standard library's source, or on a text file"
    ),
    source=(
        "The top-level *.py files of this Python's standard library (sorted, first 200,000 "
        "characters), or text_file; contiguous 90/5/5 split"
    ),
    kind="supervised",
    budget=Budget(epochs=5, batch_size=32),
    target=Target("bpc", 2.5, higher_is_better=False),
    main_metric="bpc",
    higher_is_better=False,
    axes=frozenset(
        {"batch_size", "data_dir", "text_file", "corpus_chars", "seq_len", "hidden", "dropout"}
    ),
    factory=_build,
)
