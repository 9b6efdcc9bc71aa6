"""Run ids: UUIDv7, strictly increasing within a process."""

import time
import uuid

from django.utils import timezone

from django_durable.ids import uuid7, uuid7_floor


def test_ids_are_version_7_and_strictly_increasing_within_a_millisecond() -> None:
    ids = [uuid7() for _ in range(20_000)]  # many share a millisecond
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_an_id_carries_the_time_it_was_made() -> None:
    before = timezone.now()
    made = uuid7()
    assert uuid7_floor(before) <= made
    assert abs((made.int >> 80) / 1000 - time.time()) < 5
