"""The keeper (tasks/keeper.py): a message received with its short first visibility is extended before that runs out,
once, together with everything else held; the others every third of their queue's timeout."""

from __future__ import annotations

from dropq.topology import RECEIVE_VISIBILITY_SECONDS
from tasks.broker.visibility import FIRST_EXTENSION_SECONDS, Held
from tasks.keeper import FIRST_EXTENSION_CHECK_SECONDS, Keeper

URL = "http://sqs.local/123456789012/dropq-default"


class FakeChannel:
    """What the keeper reads and changes of a channel: the held messages, and their visibility."""

    def __init__(self) -> None:
        self.messages: list[Held] = []
        self.changes: list[tuple[list[str], int]] = []

    def held(self) -> list[Held]:
        return list(self.messages)

    def change_visibility(self, messages: list[Held], seconds: int) -> int:
        self.changes.append(([m.receipt_handle for m in messages], seconds))
        return len(messages)


def test_the_first_extension_comes_with_time_to_spare_before_a_receives_visibility_runs_out() -> None:
    # A check every FIRST_EXTENSION_CHECK_SECONDS, an extension that may take seconds: still before the message is back.
    assert FIRST_EXTENSION_SECONDS + FIRST_EXTENSION_CHECK_SECONDS + 2 <= RECEIVE_VISIBILITY_SECONDS


def test_a_fresh_message_is_extended_once_it_is_due_with_everything_held_and_then_only_every_interval() -> None:
    channel = FakeChannel()
    keeper = Keeper(channel)
    start = 1000.0
    keeper._next_extension = start + keeper.interval
    channel.messages = [Held("default", URL, "old"), Held("default", URL, "new", received=start)]

    keeper.tick(start + FIRST_EXTENSION_SECONDS - 0.1)
    assert channel.changes == [] and keeper.holding, "not due yet: most files are done before"

    keeper.tick(start + FIRST_EXTENSION_SECONDS)
    assert channel.changes == [(["old", "new"], 60)], "all held, to the queue's timeout, in one batch"

    keeper.tick(start + FIRST_EXTENSION_SECONDS + 1)
    assert len(channel.changes) == 1, "extended once, not at every check"

    channel.messages.append(Held("default", URL, "newer", received=start + 3))
    keeper.tick(start + 3 + FIRST_EXTENSION_SECONDS)
    assert channel.changes[-1] == (["old", "new", "newer"], 60)

    keeper.tick(start + 3 + FIRST_EXTENSION_SECONDS + keeper.interval)
    assert len(channel.changes) == 3, "then every interval"

    channel.messages = []
    keeper.tick(start + 100)
    assert not keeper.holding


def test_a_first_extension_that_failed_is_tried_again_at_the_next_check() -> None:
    class Failing(FakeChannel):
        def change_visibility(self, messages: list[Held], seconds: int) -> int:
            if not self.changes:
                self.changes.append(([], 0))
                raise OSError("connection reset")
            return super().change_visibility(messages, seconds)

    channel = Failing()
    keeper = Keeper(channel)
    channel.messages = [Held("default", URL, "new", received=1000.0)]
    keeper._next_extension = 2000.0
    keeper.tick(1000.0 + FIRST_EXTENSION_SECONDS)
    keeper.tick(1000.0 + FIRST_EXTENSION_SECONDS + FIRST_EXTENSION_CHECK_SECONDS)
    assert channel.changes == [([], 0), (["new"], 60)]


def test_a_due_extension_goes_out_before_the_ecs_agent_is_asked_for_protection() -> None:
    order: list[str] = []

    class Recording(FakeChannel):
        def change_visibility(self, messages: list[Held], seconds: int) -> int:
            order.append("extend")
            return super().change_visibility(messages, seconds)

    class Protection:
        def update(self, busy: bool) -> None:
            order.append(f"protect {busy}")

    channel = Recording()
    keeper = Keeper(channel, protection=Protection())  # type: ignore[arg-type]
    channel.messages = [Held("default", URL, "new", received=1000.0)]
    keeper._next_extension = 2000.0
    keeper.tick(1000.0 + FIRST_EXTENSION_SECONDS)
    assert order == ["extend", "protect True"]


def test_held_messages_changed_while_read_are_looked_at_again_at_the_next_check() -> None:
    class Changing(FakeChannel):
        def held(self) -> list[Held] | None:  # type: ignore[override]
            return None

    keeper = Keeper(Changing())
    keeper.tick(1000.0)
    assert keeper.holding, "the keeper checks again within FIRST_EXTENSION_CHECK_SECONDS, not an interval later"
