"""The one config-to-CLI helper: a dataclass config becomes `--flags` (one per field) and back.

    add_config_arguments(parser, TrainConfig)          # --steps N, --flip / --no-flip, ...
    cfg = config_from_args(TrainConfig, args)

bool fields get `--flag / --no-flag`; int, float and str fields a typed option with the field's default; tuple
fields `nargs="+"` of their elements' type. Field names map to flags with `_` -> `-`.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing

_SCALARS = {"int": int, "float": float, "str": str, int: int, float: float, str: str}


def _field_type(cls, f: dataclasses.Field):
    """The runtime type of a field, resolving string annotations (`from __future__ import annotations`)."""
    hints = typing.get_type_hints(cls)
    return hints.get(f.name, f.type)


def add_config_arguments(parser: argparse.ArgumentParser, cls, *, required: tuple[str, ...] = (),
                         skip: tuple[str, ...] = (), help: dict[str, str] | None = None,
                         choices: dict[str, tuple] | None = None) -> None:
    """One option per field of dataclass `cls` (defaults from its defaults). required: fields that must be given;
    skip: fields left out (set by the verb itself); help: per-field help text; choices: per-field allowed values."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"cls: expected a dataclass type, got {cls!r}")
    defaults = cls()
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        flag = "--" + f.name.replace("_", "-")
        value = getattr(defaults, f.name)
        kind = _field_type(cls, f)
        text = (help or {}).get(f.name, f"default {value!r}")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value, help=text)
        elif typing.get_origin(kind) is tuple:
            args = [a for a in typing.get_args(kind) if a is not Ellipsis]
            elem = _SCALARS.get(args[0], str) if args else str
            parser.add_argument(flag, type=elem, nargs="+", default=value, required=f.name in required, help=text)
        elif kind in _SCALARS or type(value) in _SCALARS:
            parser.add_argument(flag, type=_SCALARS.get(kind, type(value)), default=value,
                                required=f.name in required, choices=(choices or {}).get(f.name), help=text)
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no command-line form for a field of type {kind!r}")


def config_from_args(cls, args: argparse.Namespace, **overrides):
    """The dataclass `cls` built from the parsed options (lists back to tuples); `overrides` win."""
    kw = {}
    for f in dataclasses.fields(cls):
        if f.init and hasattr(args, f.name):
            v = getattr(args, f.name)
            kw[f.name] = tuple(v) if isinstance(v, list) else v
    kw.update(overrides)
    return cls(**kw)
