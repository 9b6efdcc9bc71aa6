import decimal
import math

import pytest
from django.test import override_settings

from django_durable.payloads import to_json


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
