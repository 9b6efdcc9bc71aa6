"""PostgreSQL array parameters sent as one literal.

Django's psycopg cursor binds parameters client-side, and a Python list becomes an array
literal built element by element, each checked against a regex for quoting: about 2 ms
for 500 uuids, longer than the query it feeds. A uuid's text needs no quoting, so the
literal is one join.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable


def uuid_array(ids: Iterable[uuid.UUID]) -> str:
    """``ids`` as a ``uuid[]`` literal, for a ``%s::uuid[]`` placeholder."""
    return "{" + ",".join(map(str, ids)) + "}"
