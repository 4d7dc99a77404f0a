"""Option-key checking: a misspelled key names itself, the accepted keys and a did-you-mean."""

from __future__ import annotations

import difflib
import inspect
import os
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "OptionKeyError",
    "OptionValueError",
    "annotations_of",
    "check_argument_types",
    "check_call_options",
    "check_keys",
    "did_you_mean",
    "read_yaml_file",
]


def did_you_mean(name: object, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate (case-insensitive), or an empty string."""
    by_lower = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


class OptionKeyError(ValueError, KeyError):
    """An option block holds a key its reader does not accept (a ``ValueError`` and a ``KeyError``)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def check_keys(block: Mapping[str, Any] | None, accepted: Iterable[str], where: str) -> None:
    """Raise `OptionKeyError` naming every unknown key of ``block``, the accepted keys and close matches.

    Args:
        block: the option block (``None``: nothing to check).
        accepted: the keys its reader accepts.
        where: the block's name in messages, e.g. ``"train (DANModel)"`` or ``"path"``.

    Raises:
        OptionKeyError: an unknown key, or ``block`` is not a mapping.
    """
    if block is None:
        return
    if not isinstance(block, Mapping):
        raise OptionKeyError(f"option block {where!r} must be a mapping of keys to values, got {type(block).__name__}")
    accepted = tuple(accepted)
    unknown = [key for key in block if key not in accepted]
    if not unknown:
        return
    hints = [f"{key!r}{did_you_mean(key, accepted)}" for key in unknown]
    raise OptionKeyError(
        f"unknown option key(s) in {where}: {', '.join(hints)}; accepted keys: {', '.join(sorted(accepted))}"
    )


class OptionValueError(ValueError, TypeError):
    """An option has a value of the wrong type or outside its choices (a ``ValueError`` and a ``TypeError``)."""


_SIMPLE = (bool, int, float, str)


def _simple_choices(hint: Any) -> tuple[tuple[type, ...], tuple[Any, ...]] | None:
    """``(types, literals)`` a value of annotation ``hint`` may have, or None when the hint is not made only of
    bool/int/float/str, ``None`` and ``Literal[...]`` (then nothing is checked)."""
    origin = typing.get_origin(hint)
    if hint is type(None) or hint is None:
        return (type(None),), ()
    if hint in _SIMPLE:
        return (hint,), ()
    if origin is typing.Literal:
        return (), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        kinds: tuple[type, ...] = ()
        literals: tuple[Any, ...] = ()
        for arg in typing.get_args(hint):
            part = _simple_choices(arg)
            if part is None:
                return None
            kinds, literals = kinds + part[0], literals + part[1]
        return kinds, literals
    return None


def _fits(value: Any, kinds: tuple[type, ...], literals: tuple[Any, ...]) -> bool:
    if any(value == lit and type(value) is type(lit) for lit in literals):
        return True
    if isinstance(value, bool):
        return bool in kinds
    if isinstance(value, int) and float in kinds:
        return True
    return any(isinstance(value, kind) for kind in kinds if kind is not bool)


def _describe(kinds: tuple[type, ...], literals: tuple[Any, ...]) -> str:
    names = [("None" if kind is type(None) else kind.__name__) for kind in kinds]
    names += [repr(lit) for lit in literals]
    return " or ".join(names)


def annotations_of(target: Any, signature: inspect.Signature | None = None) -> dict[str, Any]:
    """Each parameter's annotation of ``target`` (a class: its ``__init__``), resolved one by one (string
    annotations evaluated in the defining module); one that does not resolve is left out, and its values are not
    checked (see `check_argument_types`)."""
    signature = signature or inspect.signature(target)
    function = target.__init__ if inspect.isclass(target) else target
    namespace = getattr(inspect.unwrap(function), "__globals__", {})
    hints: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        annotation = param.annotation
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, dict(namespace))  # the code's own annotation text, never user input
            except Exception:
                continue
        if annotation is not inspect.Parameter.empty:
            hints[name] = annotation
    return hints


def check_call_options(
    block: Mapping[str, Any] | None,
    target: Any,
    where: str,
    *,
    given: Iterable[str] = (),
    skip: Iterable[str] = ("type",),
    extra_ignored: bool = False,
) -> None:
    """Check an option block against the keyword parameters of ``target`` (a class or function) before it is
    called with them: unknown keys (unless ``target`` takes ``**kwargs``), required parameters that are missing,
    and values whose annotation is made of bool/int/float/str/None/``Literal`` that do not fit it.

    Args:
        block: the option block (``None``: nothing to check).
        target: what the block's keys are passed to, e.g. ``torch.optim.Adam`` or an architecture class.
        where: the block's name in messages, e.g. ``"train.optim_g (Adam)"``.
        given: parameters the caller fills in itself (e.g. ``params`` of an optimizer).
        skip: keys of the block that are not passed on (``type``).
        extra_ignored: ``target``'s ``**kwargs`` only swallow what it does not use (BasicSR's metrics): its
            named parameters are then the accepted keys all the same.

    Raises:
        OptionKeyError: an unknown key (with the accepted keys and a did-you-mean) or a missing required one.
        OptionValueError: a value of the wrong type or outside a ``Literal``'s choices.
    """
    if block is None:
        return
    if not isinstance(block, Mapping):
        raise OptionKeyError(f"option block {where!r} must be a mapping of keys to values, got {type(block).__name__}")
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return
    params = signature.parameters
    skip, given = tuple(skip), tuple(given)
    positional_only = [name for name, p in params.items() if p.kind is p.POSITIONAL_ONLY]
    named = [name for name, p in params.items()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name not in given]
    if extra_ignored or not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        check_keys(block, [*named, *skip], where)
    missing = [name for name in named if params[name].default is inspect.Parameter.empty and name not in block]
    missing += [name for name in positional_only if name not in given]
    if missing:
        raise OptionKeyError(f"{where}: missing required key(s) {', '.join(map(repr, missing))}")
    hints = annotations_of(target, signature)
    check_argument_types({k: v for k, v in block.items() if k not in skip}, hints, where)


def check_argument_types(arguments: Mapping[str, Any], hints: Mapping[str, Any], where: str) -> None:
    """Raise `OptionValueError` for an argument whose annotation in ``hints`` is made of bool/int/float/str,
    ``None`` and ``Literal[...]`` and that does not fit it (``True`` is no int, ``2.0`` is no int; an int is
    a float); other annotations are not checked."""
    for key, value in arguments.items():
        choices = _simple_choices(hints[key]) if key in hints else None
        if choices is not None and not _fits(value, *choices):
            raise OptionValueError(
                f"{where}: {key} must be {_describe(*choices)}, got {value!r} ({type(value).__name__})"
            )


def _unique_key_loader() -> Any:
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: merged (and overridable) by PyYAML
                    continue
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice (lines {seen[key]} and {line}); keep one",
                        key_node.start_mark,
                    )
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def read_yaml_file(path: str | os.PathLike[str], what: str = "option file") -> dict[str, Any]:
    """A YAML mapping read safely (as ``yaml.safe_load``: no Python objects), every failure one line naming the
    file: missing, a folder, not UTF-8 text, not valid YAML (with the line and column), a key given twice in one
    mapping (PyYAML would keep the last silently), not a mapping.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a folder, or a file that is not a YAML mapping.
    """
    import yaml

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} {path!r} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"{what} {path!r} is a folder, expected a YAML file")
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_unique_key_loader())  # a SafeLoader subclass: no Python objects
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path!r} is not UTF-8 text (is it a checkpoint or an image?)") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{what} {path!r} is not valid YAML: {problem}{where}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} {path!r} is not a YAML mapping of keys to values (got {type(data).__name__})")
    return data
