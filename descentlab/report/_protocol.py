"""An experiment's protocol in words, from its stored specification."""

from __future__ import annotations

from ..store import StoredExperiment

__all__ = ["describe", "searched_weight_decay", "tuning_seeds"]


def searched_weight_decay(spec: StoredExperiment) -> bool:
    """Whether the experiment searched the weight decay of decoupled-decay optimizers."""
    return bool(spec.tuning.weight_decay_range)


def tuning_seeds(spec: StoredExperiment) -> list[int]:
    """The tuning seed of each search, the reported one first (a single search: its training
    seed, ``tuning.seed`` or else the first seed); none without a search."""
    return spec.tuning_seeds


_KINDS = {
    "grid": "log-spaced grid",
    "random": "log-uniform random search",
    "quasi-random": "quasi-random search (scrambled Sobol)",
}


def describe(spec: StoredExperiment) -> str:
    """The experiment's protocol in words."""
    seeds = spec.seeds
    t = spec.tuning
    text = f"{len(seeds)} seeds ({', '.join(map(str, seeds))}). "
    if t.method in _KINDS:
        span = (
            str(list(t.lr_range))
            if t.lr_range
            else f"[lr0 / {t.lr_factor:g}, lr0 x {t.lr_factor:g}]"
        )
        searches = tuning_seeds(spec)
        text += (
            f"Learning rate tuned for every optimizer with the same budget: a {_KINDS[t.method]} "
            f"of {t.budget} values in {span} (lr0: the optimizer's default)"
        )
        if t.refine:
            text += (
                f", the last {t.refine} within a factor {t.refine_factor:g} of the first"
                f" {t.budget - t.refine}'s best"
            )
        if t.weight_decay_range:
            lo, hi = t.weight_decay_range
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
    if t.defaults and t.method != "defaults":
        text += " Labels ending in @defaults: the same optimizer untuned, at its default."
    if len(spec.variants) > 1:
        axes = sorted({a for r in spec.rows for a in r.changed})
        how = "one at a time from the baseline (the first value of each)"
        if spec.design != "one-at-a-time":
            how = "in every combination"
        text += (
            f" Besides the optimizer, {len(spec.variants)} variants vary {', '.join(axes)} {how};"
            " every variant is tuned like an optimizer of its own, and rows show it in brackets."
        )
    return text
