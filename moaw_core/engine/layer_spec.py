"""Layer specifications: the text a user types to pick layers, resolved against the layers that exist.

Grammar (comma-separated terms, whitespace ignored):
    all              every available layer
    block.12         one layer by canonical name
    block.3-7        an inclusive index range of one prefix (also `block.3..7`)
    top-3            the 3 best layers of a score table (needs `scores`, an object with `.top_k(k)`)
    top-3:fisher     ... ranked by another score column
A term that matches nothing is an error naming the valid layers, never silently dropped.
"""
from __future__ import annotations

import re

_RANGE = re.compile(r"^(?P<prefix>[A-Za-z_]+)\.(?P<a>\d+)(?:-|\.\.)(?P<b>\d+)$")
_TOP = re.compile(r"^top-?(?P<k>\d+)(?::(?P<by>\w+))?$")


def _summary(names: list[str]) -> str:
    shown = names if len(names) <= 10 else names[:5] + ["..."] + names[-3:]
    return ", ".join(shown)


def parse_layer_spec(spec: str, available, scores=None) -> list[str]:
    """Resolve `spec` to layer names, in the order of `available` (duplicates removed).

    Args:
        spec: the layer specification (see the module docstring).
        available: the layers that exist (canonical names, forward order).
        scores: optional score table with `.top_k(k, by=...) -> list[str]` for `top-k` terms.
    Returns:
        Selected layer names (non-empty).
    Raises:
        ValueError: empty spec or selection, unknown names, a range outside the model, `top-k` without scores.
    """
    available = list(available)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("layer spec is empty: give layer names (e.g. 'block.3, block.5-7'), 'all' or 'top-3'")
    chosen: set[str] = set()
    for term in (t.strip() for t in spec.split(",")):
        if not term:
            continue
        if term.lower() == "all":
            chosen.update(available)
        elif (m := _TOP.match(term.lower())) is not None:
            if scores is None:
                raise ValueError(f"layer spec term {term!r} needs a layer score table (connect the scores input)")
            k = int(m["k"])
            if k < 1:
                raise ValueError(f"layer spec term {term!r}: k must be >= 1")
            ranked = [name for name in scores.top_k(k, by=m["by"] or "probe")]
            missing = [name for name in ranked if name not in available]
            if missing:
                raise ValueError(f"the score table ranks layers {missing} that these features/model do not have "
                                 f"(available: {_summary(available)}); scores from another model?")
            chosen.update(ranked)
        elif (m := _RANGE.match(term)) is not None:
            a, b = int(m["a"]), int(m["b"])
            if a > b:
                raise ValueError(f"layer spec range {term!r} is reversed; write {m['prefix']}.{b}-{a}")
            names = [f"{m['prefix']}.{i}" for i in range(a, b + 1)]
            missing = [n for n in names if n not in available]
            if missing:
                raise ValueError(f"layer spec range {term!r} includes unknown layers {missing}; "
                                 f"available: {_summary(available)}")
            chosen.update(names)
        elif term in available:
            chosen.add(term)
        else:
            raise ValueError(f"unknown layer {term!r}; available: {_summary(available)}")
    out = [name for name in available if name in chosen]
    if not out:
        raise ValueError(f"layer spec {spec!r} selects no layer")
    return out
