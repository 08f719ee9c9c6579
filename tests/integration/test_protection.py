"""Task scale-in protection against a faithful stand-in for the ECS agent endpoint."""

from __future__ import annotations

import pytest

from tasks.protection import EXPIRES_IN_MINUTES, RENEW_AFTER_SECONDS, ProtectionError, TaskProtection
from tests.ecs_agent import FakeEcsAgent


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_protection_follows_busy_and_idle_and_is_renewed_before_it_expires() -> None:
    clock = Clock()
    with FakeEcsAgent() as agent:
        protection = TaskProtection(agent.uri, clock=clock)
        protection.update(busy=True)
        assert agent.enabled and agent.changes[-1][1:] == (True, EXPIRES_IN_MINUTES)
        protection.update(busy=True)
        assert len(agent.changes) == 1, "no call while nothing changes"
        clock.now += RENEW_AFTER_SECONDS
        protection.update(busy=True)
        assert len(agent.changes) == 2 and agent.enabled, "renewed halfway through its expiry"
        protection.update(busy=False)
        assert not agent.enabled and agent.changes[-1][1:] == (False, None)


def test_a_refusal_or_an_unreachable_agent_is_an_error_that_says_so() -> None:
    with FakeEcsAgent() as agent:
        agent.refuse = True
        with pytest.raises(ProtectionError, match="TASK_NOT_VALID"):
            TaskProtection(agent.uri).update(busy=True)
        unreachable = agent.uri.replace(f":{agent.server.server_address[1]}", ":9")
    with pytest.raises(ProtectionError, match="cannot reach the ECS agent"):
        TaskProtection(unreachable).update(busy=True)
