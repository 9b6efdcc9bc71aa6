"""The replay-aware log scenarios (tests/scenarios/replay_logs.py) on ``InMemoryStorage``,
with no database; tests/integration/test_replay_logs.py runs them on each database."""

import pytest

from django_durable.storage import get_storage
from django_durable.testing import InMemoryStorage, use_storage
from tests.scenarios.replay_logs import ReplayLogScenarios


class TestReplayLogsInMemory(ReplayLogScenarios):
    @pytest.fixture(autouse=True)
    def storage(self):
        with use_storage(InMemoryStorage()) as installed:
            yield installed

    def stored(self, handle):
        return [(log.attempt, log.message) for log in get_storage().logs(handle.id)]
