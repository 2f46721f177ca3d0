"""An experiment's protocol in words, from its stored specification."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["describe", "searched_weight_decay", "tuning_seeds"]


def searched_weight_decay(spec: Mapping[str, Any]) -> bool:
    """Whether the experiment searched the weight decay of decoupled-decay optimizers."""
    return bool(spec.get("tuning", {}).get("weight_decay_range"))


def tuning_seeds(spec: Mapping[str, Any]) -> list[int]:
    """The tuning seed of each search, the reported one first (a single search: its training
    seed, ``tuning.seed`` or else the first seed); none without a search."""
    t = spec.get("tuning", {})
    if t.get("method", "defaults") == "defaults":
        return []
    seeds = spec.get("seeds", [])
    return list(t.get("seeds") or [seeds[0] if t.get("seed") is None and seeds else t.get("seed")])


_KINDS = {
    "grid": "log-spaced grid",
    "random": "log-uniform random search",
    "quasi-random": "quasi-random search (scrambled Sobol)",
}


def describe(spec: Mapping[str, Any]) -> str:
    """The experiment's protocol in words."""
    seeds = spec.get("seeds", [])
    t = spec.get("tuning", {})
    text = f"{len(seeds)} seeds ({', '.join(map(str, seeds))}). "
    if t.get("method") in _KINDS:
        span = t.get("lr_range") or f"[lr0 / {t['lr_factor']:g}, lr0 x {t['lr_factor']:g}]"
        kind = _KINDS[t["method"]]
        searches = tuning_seeds(spec)
        text += (
            f"Learning rate tuned for every optimizer with the same budget: a {kind} of "
            f"{t['budget']} values in {span} (lr0: the optimizer's default)"
        )
        if t.get("refine"):
            text += (
                f", the last {t['refine']} within a factor {t['refine_factor']:g} of the first"
                f" {t['budget'] - t['refine']}'s best"
            )
        if t.get("weight_decay_range"):
            lo, hi = t["weight_decay_range"]
            text += (
                "; for optimizers with decoupled weight decay, as many (learning rate, weight"
                f" decay) pairs, the weight decay in [{lo:g}, {hi:g}]"
            )
        if len(searches) == 1:
            text += f", on seed {searches[0]}"
        else:
            text += (
                f", once per tuning seed ({', '.join(map(str, searches))}: other draws and"
                " other training seeds)"
            )
        text += (
            ", chosen on the final validation metric; the best is rerun on every seed and only"
            " those runs are shown here"
        )
        if len(searches) > 1:
            text += (
                f" (the tables: tuning seed {searches[0]}'s; the tuning-noise tables compare"
                " every search's)"
            )
        text += "."
    else:
        text += "No tuning: every optimizer at its default learning rate."
    if t.get("defaults") and t.get("method") != "defaults":
        text += " Labels ending in @defaults: the same optimizer untuned, at its default."
    variants = spec.get("variants", [])
    if len(variants) > 1:
        axes = sorted({a for r in spec.get("rows", []) for a in r["changed"]})
        how = "one at a time from the baseline (the first value of each)"
        if spec.get("design") != "one-at-a-time":
            how = "in every combination"
        text += (
            f" Besides the optimizer, {len(variants)} variants vary {', '.join(axes)} {how};"
            " every variant is tuned like an optimizer of its own, and rows show it in brackets."
        )
    return text
