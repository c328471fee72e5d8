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
_SPEC_CHARS = 10_000  # longer specs are refused before parsing (no layer list is that long)
_SHOWN = 40  # characters of a user's term quoted back in an error message


def _summary(names: list[str]) -> str:
    shown = names if len(names) <= 10 else names[:5] + ["..."] + names[-3:]
    return ", ".join(shown)


def _quote(term: str) -> str:
    """The user's term for an error message, cut to a bounded length."""
    return repr(term if len(term) <= _SHOWN else term[:_SHOWN] + "...")


def parse_layer_spec(spec: str, available, scores=None) -> list[str]:
    """Resolve `spec` to layer names, in the order of `available` (duplicates removed).

    Ranges are resolved against the layers that exist (no name is built for a missing index), so any
    error message stays short whatever the user typed.

    Args:
        spec: the layer specification (see the module docstring).
        available: the layers that exist (canonical names, forward order).
        scores: optional score table with `.top_k(k, by=...) -> list[str]` for `top-k` terms.
    Returns:
        Selected layer names (non-empty).
    Raises:
        ValueError: empty or over-long spec, empty selection, unknown names, a range outside the model,
        `top-k` without scores.
    """
    available = list(available)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("layer spec is empty: give layer names (e.g. 'block.3, block.5-7'), 'all' or 'top-3'")
    if len(spec) > _SPEC_CHARS:
        raise ValueError(f"layer spec is {len(spec)} characters long (at most {_SPEC_CHARS}); use ranges "
                         f"('block.0-29') or 'all'")
    chosen: set[str] = set()
    for term in (t.strip() for t in spec.split(",")):
        if not term:
            continue
        if term.lower() == "all":
            chosen.update(available)
        elif (m := _TOP.match(term.lower())) is not None:
            chosen.update(_top_k(term, m, available, scores))
        elif (m := _RANGE.match(term)) is not None:
            chosen.update(_range(term, m["prefix"], m["a"], m["b"], available))
        elif term in available:
            chosen.add(term)
        else:
            raise ValueError(f"unknown layer {_quote(term)}; available: {_summary(available)}")
    out = [name for name in available if name in chosen]
    if not out:
        raise ValueError(f"layer spec {_quote(spec)} selects no layer")
    return out


def _top_k(term: str, m: re.Match, available: list[str], scores) -> list[str]:
    if scores is None:
        raise ValueError(f"layer spec term {_quote(term)} needs a layer score table (connect the scores input)")
    if len(m["k"]) > 9 or int(m["k"]) < 1:
        raise ValueError(f"layer spec term {_quote(term)}: k must be between 1 and the number of layers "
                         f"({len(available)})")
    ranked = list(scores.top_k(int(m["k"]), by=m["by"] or "probe"))
    missing = [name for name in ranked if name not in available]
    if missing:
        raise ValueError(f"the score table ranks layers {_summary(missing)} that these features/model do not have "
                         f"(available: {_summary(available)}); scores from another model?")
    return ranked


def _range(term: str, prefix: str, a_text: str, b_text: str, available: list[str]) -> list[str]:
    """The layers `prefix.a` .. `prefix.b` (inclusive); every index must exist."""
    have = {}
    for name in available:
        head, _, idx = name.rpartition(".")
        if head == prefix and idx.isdigit():
            have[int(idx)] = name
    span = f"{prefix}.{min(have)}-{max(have)}" if have else f"no '{prefix}.N' layers"
    if len(a_text) > 9 or len(b_text) > 9:
        raise ValueError(f"layer spec range {_quote(term)}: index too large; this model has {span}")
    a, b = int(a_text), int(b_text)
    if a > b:
        raise ValueError(f"layer spec range {_quote(term)} is reversed; write {prefix}.{b}-{a}")
    inside = [have[i] for i in sorted(have) if a <= i <= b]
    if len(inside) != b - a + 1:
        first_missing = next(i for i in range(a, b + 1) if i not in have)  # stops at the first gap
        raise ValueError(f"layer spec range {_quote(term)} includes unknown layers ({b - a + 1 - len(inside)} of "
                         f"{b - a + 1} missing, first {prefix}.{first_missing}); this model has {span} "
                         f"(available: {_summary(available)})")
    return inside
