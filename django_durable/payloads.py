"""JSON validation for everything stored: arguments, step results, outputs, event payloads.

Values must survive a JSON round trip unchanged (tuples may become lists) so that live
execution and replay see the same thing. Anything else is refused where it is produced,
with the offending value's location in the message.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .conf import durable_settings
from .exceptions import PayloadTooLarge


def _check(value: Any, where: str) -> None:
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value!r}, which JSON cannot represent")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{where} has the key {key!r} of type {type(key).__name__}; "
                    "JSON object keys must be strings"
                )
            _check(item, f"{where}[{key!r}]")
        return
    raise TypeError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which is not "
        "JSON; pass plain data (str, int, float, bool, None, list, dict) instead"
    )


def to_json(value: Any, where: str) -> Any:
    """Return ``value`` as it reads back from JSON, or raise naming ``where``.

    Raises ``TypeError`` for values JSON cannot hold, ``ValueError`` for NaN/infinity and
    ``PayloadTooLarge`` (a ``ValueError``) for values over ``DURABLE["MAX_PAYLOAD_BYTES"]``.
    """
    _check(value, where)
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    limit = durable_settings.MAX_PAYLOAD_BYTES
    size = len(text.encode())
    if size > limit:
        raise PayloadTooLarge(
            f"{where} is {size} bytes of JSON, over the limit of {limit} bytes "
            "(DURABLE['MAX_PAYLOAD_BYTES']); store large data elsewhere and pass a reference"
        )
    return json.loads(text)
