"""Search runs by id (whole or a prefix), idempotency or concurrency key, and arguments.

- A run id or its first characters: a range of the primary key, answered by its index.
- ``name=value``: runs whose keyword argument ``name`` is ``value`` (as JSON when it
  parses, ``n=42`` matches 42 and "42"). Where the database has JSON containment
  (PostgreSQL, MySQL/MariaDB) it is ``kwargs @> {"name": value}``, which a GIN index on
  ``kwargs`` could answer; elsewhere (SQLite) a comparison of the extracted key.
- Anything else: the idempotency and concurrency keys, then the text of the arguments
  (positional and keyword, case-insensitive substring). No index answers that: the list
  reads runs newest first until it has a page of matches, so narrow a search over
  millions of runs with the job, status and creation filters, which are indexed.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from django.db import connections
from django.db.models import Q, QuerySet

from ..models import Run

HEX = re.compile(r"[0-9a-f]{4,32}")
KEYWORD = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)", re.S)


def search_runs(queryset: QuerySet[Run], term: str) -> QuerySet[Run]:
    term = term.strip()
    if not term:
        return queryset
    digits = term.lower().replace("-", "")
    if HEX.fullmatch(digits):
        # Keys and arguments are looked at only if no id matches: they are not indexed.
        by_id = queryset.filter(
            pk__gte=uuid.UUID(digits.ljust(32, "0")), pk__lte=uuid.UUID(digits.ljust(32, "f"))
        )
        if by_id.exists():
            return by_id
    keys = Q(idempotency_key=term) | Q(concurrency_key=term)
    keyword = KEYWORD.fullmatch(term)
    if keyword and "__" not in keyword["name"]:  # "__" would read as a lookup path
        return queryset.filter(keys | keyword_is(queryset, keyword["name"], keyword["value"]))
    return queryset.filter(keys | arguments_contain(term))


def values_of(text: str) -> list[Any]:
    """What ``text`` may stand for in stored arguments: itself, and its JSON value."""
    values: list[Any] = [text]
    try:
        parsed = json.loads(text)
    except ValueError:
        return values
    return values if parsed == text else [*values, parsed]


def keyword_is(queryset: QuerySet[Run], name: str, value: str) -> Q:
    contains = connections[queryset.db].features.supports_json_field_contains
    match = Q()
    for candidate in values_of(value):
        if contains:
            match |= Q(kwargs__contains={name: candidate})
        elif not isinstance(candidate, dict | list):  # a key compares to scalars only
            match |= Q(**{f"kwargs__{name}": candidate})
    return match


def arguments_contain(term: str) -> Q:
    # Some databases keep JSON as Python's json.dumps wrote it, with non-ASCII characters
    # and quotes escaped: look for that spelling too.
    spellings = {term, json.dumps(term)[1:-1]}
    match = Q()
    for text in spellings:
        match |= Q(args__icontains=text) | Q(kwargs__icontains=text)
    return match
