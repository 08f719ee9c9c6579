"""Visibility keeping (tasks/broker/visibility.py): which messages a worker holds, and their visibility changed in batches."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tasks.broker.visibility import Held, Visibility, held_messages, held_of, is_busy
from tests.unit.fake_sqs import FakeSQS, kombu_message

URL = "http://sqs.local/123456789012/dropq-default"
HEAVY = "http://sqs.local/123456789012/dropq-heavy"


def test_an_sqs_message_is_held_by_its_queue_url_and_receipt_handle() -> None:
    assert held_of(kombu_message(URL, "r1", routing_key="default")) == Held(queue="default", url=URL, receipt_handle="r1")
    assert held_of(kombu_message(URL, "r1", routing_key="")) == Held(queue="", url=URL, receipt_handle="r1")
    assert held_of(SimpleNamespace(delivery_info={"routing_key": "default"})) is None, "not from SQS: nothing to change"


def test_held_messages_leave_out_those_settled_and_those_not_from_sqs() -> None:
    qos = SimpleNamespace(
        _delivered={1: kombu_message(URL, "r1"), 2: kombu_message(URL, "r2"), 3: SimpleNamespace(delivery_info={})}, _dirty={2}
    )
    assert held_messages(qos) == [Held("default", URL, "r1")]
    assert is_busy(qos)
    assert not is_busy(SimpleNamespace(_delivered={2: kombu_message(URL, "r2")}, _dirty={2})), "all it holds is settled"


class ChangingDict(dict[Any, Any]):
    """A QoS's `_delivered` while the consuming thread changes it: copying it raises, as a dict does."""

    def __init__(self, failures: int) -> None:
        super().__init__({1: kombu_message(URL, "r1")})
        self.failures = failures

    def items(self) -> Any:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("dictionary changed size during iteration")
        return super().items()


def test_held_messages_try_again_while_the_consuming_thread_changes_them_and_then_give_up() -> None:
    assert held_messages(SimpleNamespace(_delivered=ChangingDict(failures=2), _dirty=set())) == [Held("default", URL, "r1")]
    assert held_messages(SimpleNamespace(_delivered=ChangingDict(failures=3), _dirty=set())) is None


def test_change_batches_ten_per_queue_and_counts_only_what_sqs_accepted() -> None:
    sqs = FakeSQS()
    held = [Held("default", URL, sqs.receive(URL)) for _ in range(12)] + [Held("heavy", HEAVY, sqs.receive(HEAVY))]
    del sqs.queues[URL][held[3].receipt_handle]  # acknowledged meanwhile: its receipt handle is no longer valid
    visibility = Visibility(lambda: sqs)

    assert visibility.change(held, 120) == 12

    batches = sqs.params("ChangeMessageVisibilityBatch")
    assert [(b["QueueUrl"], len(b["Entries"])) for b in batches] == [(URL, 10), (URL, 2), (HEAVY, 1)]
    assert {e["VisibilityTimeout"] for b in batches for e in b["Entries"]} == {120}
    assert all(s.visibility_timeout == 120 for q in sqs.queues.values() for s in q.values())


def test_the_visibility_client_is_made_once_at_first_use() -> None:
    made: list[FakeSQS] = []
    visibility = Visibility(lambda: made.append(FakeSQS()) or made[-1])
    assert made == []
    visibility.change([Held("default", URL, "r1")], 0)
    visibility.change([Held("default", URL, "r2")], 0)
    assert len(made) == 1 and len(made[0].params("ChangeMessageVisibilityBatch")) == 2


class FakeKeeper:
    """tasks/keeper.py's Keeper as the channel drives it: started once, woken, stopped."""

    def __init__(self) -> None:
        self.started = self.stopped = False
        self.wakes = 0

    def start(self) -> FakeKeeper:
        self.started = True
        return self

    def wake(self) -> None:
        self.wakes += 1

    def stop(self) -> None:
        self.stopped = True


def test_the_keeper_starts_once_and_is_woken_only_when_the_worker_turns_busy_or_idle() -> None:
    visibility = Visibility(FakeSQS)
    keepers: list[FakeKeeper] = []

    assert visibility.start_keeper(lambda: keepers.append(FakeKeeper()) or keepers[-1])
    assert not visibility.start_keeper(lambda: keepers.append(FakeKeeper()) or keepers[-1]), "one keeper per channel"
    (keeper,) = keepers
    assert keeper.started

    for busy in (True, True, True, False, False, True):
        visibility.on_held(busy)
    assert keeper.wakes == 3, "busy, idle, busy again"

    visibility.stop_keeper()
    assert keeper.stopped and visibility.keeper is None
    visibility.stop_keeper()  # closing twice is harmless
