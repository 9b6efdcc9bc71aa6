"""What can be stored: JSON values, bounded names, and the text the engine writes itself.

Values must survive a JSON round trip unchanged on every database (tuples may become
lists) so that live execution and replay see the same thing. Anything else is refused
where it is produced, with the offending value's location in the message
(``kwargs['items'][3] of shop.order``), as a ``TypeError`` (not JSON at all) or a
``ValueError`` (JSON, but not storable). The rules, each for a database that would
otherwise fail or change the value:

- no NUL character (``'\\x00'``) in a string or key: PostgreSQL cannot store one;
- no lone surrogate (``'\\ud800'``): it is not Unicode, so it cannot be encoded as UTF-8;
- no NaN or infinity: JSON has none;
- no ``-0.0`` and no float of magnitude 1e16 or more: PostgreSQL's ``jsonb`` keeps numbers
  as decimals and gives them back as ``0`` and as an int (``10000000000000000``);
- at most ``MAX_DEPTH`` nested lists and objects: MariaDB's JSON check refuses documents
  more than 31 levels deep, and the engine nests stored values up to two levels further
  (an argument inside the argument list, a child's output inside the parent's journal);
- integers of at most ``MAX_INT_DIGITS`` digits, the most Python converts to text;
- at most ``DURABLE["MAX_PAYLOAD_BYTES"]`` bytes of JSON.

The values are walked with a stack, not recursion, so a deep value is refused with its
location instead of overflowing Python's stack.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .conf import durable_settings
from .exceptions import PayloadTooLarge

MAX_DEPTH = 20
MAX_INT_DIGITS = 4300  # Python's default int_max_str_digits
_INT_LIMIT = 10**MAX_INT_DIGITS
# repr() switches to exponent notation here; jsonb prints such a float without a
# decimal point, which reads back as an int.
_FLOAT_EXPONENT_AT = 1e16
_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")

# A location as a chain of (parent, key or index), rendered only for an error message;
# the root's piece is (the value's name, what it belongs to).
_Path = tuple["_Path | None", Any]


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored (a NUL character, a lone surrogate), or None."""
    if text.isascii():
        if "\x00" not in text:
            return None
        index = text.index("\x00")
    else:
        match = _UNSTORABLE_CHARACTER.search(text)
        if match is None:
            return None
        index = match.start()
    if text[index] == "\x00":
        return f"contains a NUL character ('\\x00') at index {index}, which PostgreSQL cannot store"
    return (
        f"contains a lone surrogate ({text[index]!r}) at index {index}, which is not "
        "Unicode and cannot be encoded as UTF-8"
    )


def storable_text(text: str) -> str:
    """``text`` with NUL characters and lone surrogates written as escapes (``\\x00``,
    ``\\ud800``): for what the engine stores itself (log lines, error messages and
    tracebacks), which must never stop a run from being recorded."""
    if text_problem(text) is None:
        return text
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _render(path: _Path | None) -> str:
    """``kwargs['items'][3] of shop.order``: the root's name, the keys and indexes under
    it, then what the root belongs to (``(name, owner)`` as the root's piece)."""
    pieces: list[str] = []
    owner = ""
    while path is not None:
        path, piece = path
        if path is None:
            name, owner = piece
            pieces.append(name)
        else:
            pieces.append(f"[{piece!r}]")
    return "".join(reversed(pieces)) + (f" of {owner}" if owner else "")


def _check_number(value: int | float, path: _Path) -> None:
    if isinstance(value, int):
        if not -_INT_LIMIT < value < _INT_LIMIT:
            raise ValueError(
                f"{_render(path)} is an integer of more than {MAX_INT_DIGITS} digits; "
                "store it as a string"
            )
        return
    if not math.isfinite(value):
        raise ValueError(f"{_render(path)} is {value!r}, which JSON cannot represent")
    if value == 0 and math.copysign(1, value) < 0:
        raise ValueError(
            f"{_render(path)} is -0.0, which PostgreSQL's jsonb gives back as 0; pass 0.0"
        )
    if abs(value) >= _FLOAT_EXPONENT_AT:
        raise ValueError(
            f"{_render(path)} is the float {value!r}, which PostgreSQL's jsonb gives back "
            "as an integer; floats must be smaller than 1e16 (pass an int, or a string)"
        )


def check_value(value: Any, where: str, *, owner: str = "") -> None:
    """Raise ``TypeError``/``ValueError`` naming the first part of ``value`` that cannot
    be stored: ``where`` names the value itself (``kwargs['items']``), ``owner`` what it
    belongs to (a job's name)."""
    stack: list[tuple[Any, _Path, int]] = [(value, (None, (where, owner)), 0)]
    while stack:
        item, path, depth = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                raise ValueError(f"{_render(path)} {problem}")
        elif isinstance(item, (int, float)):
            _check_number(item, path)
        elif isinstance(item, (list, tuple, dict)):
            if depth >= MAX_DEPTH:
                raise ValueError(
                    f"{_render(path)} is a list or object nested {depth + 1} levels deep; "
                    f"stored values may nest at most {MAX_DEPTH} levels"
                )
            # Pushed last to first, so the first bad value in reading order is reported.
            if isinstance(item, dict):
                for key in item:
                    _check_key(key, path)
                for key, child in reversed(item.items()):
                    stack.append((child, (path, key), depth + 1))
            else:
                for index in range(len(item) - 1, -1, -1):
                    stack.append((item[index], (path, index), depth + 1))
        else:
            raise TypeError(
                f"{_render(path)} is a {type(item).__module__}.{type(item).__qualname__}, "
                "which is not JSON; pass plain data (str, int, float, bool, None, list, "
                "dict) instead"
            )


def _check_key(key: Any, path: _Path) -> None:
    if not isinstance(key, str):
        raise TypeError(
            f"{_render(path)} has the key {key!r} of type {type(key).__name__}; "
            "JSON object keys must be strings"
        )
    problem = text_problem(key)
    if problem is not None:
        raise ValueError(f"{_render(path)} has the key {key!r}: it {problem}")


def to_json(value: Any, where: str, *, owner: str = "") -> Any:
    """Return ``value`` as it reads back from JSON, or raise naming ``where`` (and
    ``owner``, see ``check_value``).

    Raises ``TypeError`` for values JSON cannot hold, ``ValueError`` for values no
    database would give back unchanged (see the module's docstring) and
    ``PayloadTooLarge`` (a ``ValueError``) for values over ``DURABLE["MAX_PAYLOAD_BYTES"]``.
    """
    check_value(value, where, owner=owner)
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    limit = durable_settings.MAX_PAYLOAD_BYTES
    size = len(text.encode())
    if size > limit:
        raise PayloadTooLarge(
            f"{_render((None, (where, owner)))} is {size} bytes of JSON, over the limit of "
            f"{limit} bytes "
            "(DURABLE['MAX_PAYLOAD_BYTES']); store large data elsewhere and pass a reference"
        )
    return json.loads(text)


def stored_args(args: Sequence[Any], job_name: str) -> list[Any]:
    """A run's positional arguments as stored, each checked (and size-limited) alone."""
    return [to_json(value, f"args[{index}]", owner=job_name) for index, value in enumerate(args)]


def stored_kwargs(kwargs: Mapping[str, Any], job_name: str) -> dict[str, Any]:
    """A run's keyword arguments as stored, each checked (and size-limited) alone."""
    for key in kwargs:
        _check_key(key, (None, ("kwargs", job_name)))
    return {
        key: to_json(value, f"kwargs[{key!r}]", owner=job_name) for key, value in kwargs.items()
    }


@functools.cache
def column_length(column: str) -> int:
    """The size of a string column, ``"Model.field"``, read from the model itself."""
    from django.apps import apps

    model, field = column.split(".")
    max_length = apps.get_model("django_durable", model)._meta.get_field(field).max_length
    assert isinstance(max_length, int), column
    return max_length


def check_name(value: Any, where: str, *, column: str) -> str:
    """Return ``value`` if it is a string that fits the ``"Model.field"`` column (a job
    or queue name, a key, an event or step name); otherwise raise ``TypeError`` (not a
    string) or ``ValueError`` naming ``where``, so it fails at the call rather than as a
    database error in the caller's transaction."""
    if not isinstance(value, str):
        raise TypeError(f"{where} must be a string, got {value!r} ({type(value).__name__})")
    limit = column_length(column)
    if not value or len(value) > limit:
        got = repr(value) if len(value) <= 40 else f"{len(value)} characters"
        raise ValueError(
            f"{where} must be a non-empty string of at most {limit} characters, got {got}"
        )
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(f"{where} {problem}")
    return value
