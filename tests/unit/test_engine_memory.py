"""The engine's scenarios (tests/scenarios/engine.py) on ``InMemoryStorage``, with no
database; tests/integration/test_engine.py runs them on each database."""

import pytest

from django_durable.storage import get_storage
from django_durable.testing import InMemoryStorage, use_storage
from tests.scenarios.engine import EngineScenarios


class TestEngineInMemory(EngineScenarios):
    @pytest.fixture(autouse=True)
    def storage(self):
        with use_storage(InMemoryStorage()) as installed:
            yield installed

    def logged(self, run_id):
        return [(log.level, log.message) for log in get_storage().logs(run_id)]
