import decimal
import math

import pytest
from django.test import override_settings

from django_durable.payloads import MAX_DEPTH, check_name, storable_text, to_json


def test_tuples_become_lists_and_key_order_is_kept():
    assert to_json({"b": (1, 2), "a": [None, True, 1.5, "x"]}, "v") == {
        "b": [1, 2],
        "a": [None, True, 1.5, "x"],
    }
    assert list(to_json({"z": 1, "a": 2}, "v")) == ["z", "a"]


@pytest.mark.parametrize(
    ("value", "error", "fragment"),
    [
        ({"price": decimal.Decimal("1.5")}, TypeError, "v['price'] is a decimal.Decimal"),
        ([1, {2: "x"}], TypeError, "v[1] has the key 2 of type int"),
        ({"x": [math.nan]}, ValueError, "v['x'][0] is nan"),
        ({"x": math.inf}, ValueError, "v['x'] is inf"),
        ({1, 2}, TypeError, "v is a builtins.set"),
    ],
)
def test_values_that_do_not_survive_json_are_refused_with_their_location(value, error, fragment):
    with pytest.raises(error, match=None) as raised:
        to_json(value, "v")
    assert fragment in str(raised.value)


def test_size_limit_is_configurable():
    with override_settings(DURABLE={"MAX_PAYLOAD_BYTES": 10}):
        assert to_json("12345678", "v") == "12345678"  # 10 bytes with the quotes
        with pytest.raises(ValueError, match=r"v is 11 bytes of JSON, over the limit of 10"):
            to_json("123456789", "v")


def nested(levels):
    value = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_depth_is_checked_without_recursion_up_to_the_documented_limit():
    assert to_json(nested(MAX_DEPTH), "v") == nested(MAX_DEPTH)
    with pytest.raises(ValueError, match=f"nested {MAX_DEPTH + 1} levels deep"):
        to_json(nested(MAX_DEPTH + 1), "v")
    with pytest.raises(ValueError, match=r"^v(\[0\]){20} is a list or object nested 21 levels"):
        to_json(nested(100_000), "v")  # far past Python's recursion limit


def test_a_value_that_contains_itself_is_refused_by_depth():
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="levels deep"):
        to_json(loop, "v")


def test_the_first_bad_value_in_reading_order_is_named():
    with pytest.raises(ValueError, match=r"^v\['a'\]\[1\] contains a NUL"):
        to_json({"a": [0, "\x00", "\ud800"], "b": math.nan}, "v")


@pytest.mark.parametrize("value", [1e16, -1e16, 1.5e300, 12345678901234567.0])
def test_floats_from_1e16_up_are_refused(value):
    with pytest.raises(ValueError, match="gives back as an integer"):
        to_json(value, "v")


@pytest.mark.parametrize("value", [9999999999999998.0, 1e15, 1e-300, -2.5, 0.0, 10**30, -(10**30)])
def test_numbers_below_the_limits_pass(value):
    assert repr(to_json(value, "v")) == repr(value)


def test_huge_integers_are_refused_with_their_place():
    with pytest.raises(ValueError, match=r"v\[0\] is an integer of more than 4300 digits"):
        to_json([10**4300], "v")


def test_storable_text_escapes_only_what_cannot_be_stored():
    assert storable_text("plain é \U0001f600") == "plain é \U0001f600"
    assert storable_text("a\x00b\ud800c\udfff") == "a\\x00b\\ud800c\\udfff"
    assert storable_text("a\x00b\ud800").encode()  # now encodable


def test_check_name_reads_the_column_size_from_the_model():
    from django_durable.models import Run

    assert Run._meta.get_field("queue_name").max_length == 100
    assert check_name("q" * 100, "queue", column="Run.queue_name") == "q" * 100
    with pytest.raises(ValueError, match="at most 100 characters, got 101 characters"):
        check_name("q" * 101, "queue", column="Run.queue_name")
    with pytest.raises(ValueError, match="non-empty"):
        check_name("", "queue", column="Run.queue_name")
    with pytest.raises(TypeError, match=r"queue must be a string, got b'q' \(bytes\)"):
        check_name(b"q", "queue", column="Run.queue_name")
