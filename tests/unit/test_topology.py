from __future__ import annotations

import dataclasses

import pytest

from dropq.topology import TOPOLOGY, MiB, QueueRule, QueueSpec, Route, TopologyError, WorkerPool


def test_routes_by_extension_case_insensitively_with_a_catch_all() -> None:
    assert TOPOLOGY.route("incoming/a/B.JPG").pipeline == "images"
    assert TOPOLOGY.route("incoming/photo.webp").pipeline == "images"
    assert TOPOLOGY.route("incoming/table.csv").pipeline == "tables"
    assert TOPOLOGY.route("incoming/rows.ndjson").pipeline == "tables"
    assert TOPOLOGY.route("incoming/readme").pipeline == "metadata"


def test_queues_are_chosen_by_key_pattern_pipeline_and_size() -> None:
    assert TOPOLOGY.place("incoming/archive.tar.gz", 1).queue == "default"
    assert TOPOLOGY.place("incoming/photo.jpg", 15 * MiB).queue == "default"
    assert TOPOLOGY.place("incoming/photo.jpg", 16 * MiB) == ("images", "heavy")
    assert TOPOLOGY.place("incoming/rows.csv", 16 * MiB).queue == "default"
    assert TOPOLOGY.place("incoming/rows.csv", 64 * MiB) == ("tables", "heavy")
    # A big file that is not an image or table is only read for its metadata: no heavy worker needed.
    assert TOPOLOGY.place("incoming/movie.mp4", 400 * MiB).queue == "default"
    # Urgent files skip any backlog, whatever their size.
    assert TOPOLOGY.place("incoming/urgent/photo.jpg", 16 * MiB) == ("images", "urgent")
    assert TOPOLOGY.place("incoming/Urgent/a/notes.txt", 1) == ("metadata", "urgent")
    assert TOPOLOGY.place("incoming/not-urgent/a.txt", 1).queue == "default"


def test_inbox_keys_exclude_folders_outputs_and_the_prefix_itself() -> None:
    assert TOPOLOGY.is_inbox_key("incoming/a.jpg")
    assert not TOPOLOGY.is_inbox_key("incoming/")
    assert not TOPOLOGY.is_inbox_key("incoming/folder/"), "a folder marker (empty)"
    assert TOPOLOGY.is_inbox_key("incoming/folder/", size=5), "an object with bytes whose key ends in '/' fails with a reason, not unseen"
    assert not TOPOLOGY.is_inbox_key("processed/images/incoming/a.jpg/thumb-128.jpg")


def test_output_folder_is_below_the_output_prefix() -> None:
    assert TOPOLOGY.output_folder("images", "incoming/a b.jpg") == "processed/images/incoming/a b.jpg/"


def test_a_short_visibility_timeout_allows_long_tasks_up_to_what_sqs_can_hold() -> None:
    queue = QueueSpec(name="q", task_time_limit=3600, visibility_timeout=60)
    assert queue.extend_every == 20
    with pytest.raises(TopologyError, match=r"task_time_limit 43200s must be below 43140s"):
        QueueSpec(name="q", task_time_limit=12 * 3600, visibility_timeout=60)
    with pytest.raises(TopologyError, match=r"visibility_timeout 10s is outside 30\.\.43200s"):
        QueueSpec(name="q", visibility_timeout=10)


def test_max_receive_count_must_be_in_sqs_range() -> None:
    with pytest.raises(TopologyError, match=r"max_receive_count 0 is outside SQS's range 1\.\.1000"):
        QueueSpec(name="q", max_receive_count=0)


def test_dead_letter_retention_must_outlast_the_queue() -> None:
    with pytest.raises(TopologyError, match="dlq_retention_seconds"):
        QueueSpec(name="q", retention_seconds=3600, dlq_retention_seconds=600)


def test_queue_names_follow_sqs_rules() -> None:
    with pytest.raises(TopologyError, match="queue name 'has space'"):
        QueueSpec(name="has space")


def test_overlapping_prefixes_are_refused() -> None:
    with pytest.raises(TopologyError, match="overlap"):
        dataclasses.replace(TOPOLOGY, output_prefix="incoming/processed/")


def test_routes_end_with_a_catch_all_and_queue_rules_name_known_queues_and_pipelines() -> None:
    with pytest.raises(TopologyError, match="catch-all"):
        dataclasses.replace(TOPOLOGY, routes=(Route("*.jpg", "images"),))
    with pytest.raises(TopologyError, match="unknown queue 'nope'"):
        dataclasses.replace(TOPOLOGY, queue_rules=(QueueRule("nope", pattern="big/*"),))
    with pytest.raises(TopologyError, match=r"pipelines no route leads to: \['imagez'\]"):
        dataclasses.replace(TOPOLOGY, queue_rules=(QueueRule("heavy", pipelines=("imagez",)),))


def test_every_queue_needs_a_pool() -> None:
    with pytest.raises(TopologyError, match="queues no pool consumes"):
        dataclasses.replace(TOPOLOGY, queues=(*TOPOLOGY.queues, QueueSpec(name="orphan")))
    with pytest.raises(TopologyError, match="min_workers"):
        WorkerPool(name="p", queues=("q",), min_workers=3, max_workers=2)


def test_a_worker_holds_one_message_per_process_plus_the_pools_prefetch() -> None:
    pool = WorkerPool(name="p", queues=("default",), concurrency=2, prefetch=10)
    # Celery's prefetch count is concurrency x multiplier: 2 x 6 = 12 = 2 running + 10 in hand.
    assert pool.prefetch_multiplier() == 6
    assert pool.prefetch_multiplier(concurrency=1) == 11
    assert pool.receive_batch == 10
    long_tasks = dataclasses.replace(pool, prefetch=0)
    assert long_tasks.prefetch_multiplier() == 1 and long_tasks.receive_batch == 1
    with pytest.raises(TopologyError, match="prefetch"):
        dataclasses.replace(pool, prefetch=-1)


def test_spot_runs_x86_only_and_an_unknown_architecture_is_refused() -> None:
    import dataclasses

    from dropq.topology import TOPOLOGY, TopologyError

    pool = TOPOLOGY.pools[0]
    with pytest.raises(TopologyError, match="Fargate Spot runs x86_64 tasks only"):
        dataclasses.replace(pool, spot=True, architecture="arm64")
    with pytest.raises(TopologyError, match="architecture 'sparc' is not one of"):
        dataclasses.replace(pool, architecture="sparc")
    assert dataclasses.replace(pool, spot=False, architecture="arm64").architecture == "arm64"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_writes": 0}, "min_writes 0 must be at least 1"),
        ({"min_reads": 50, "max_reads": 10}, "min_reads 50 must be at least 1 and at most max_reads 10"),
        ({"max_writes": 80_000}, "max_writes 80000 is over a table's 40000 units/s"),
        ({"target_percent": 95}, "target_percent 95 is outside DynamoDB's 20..90"),
    ],
)
def test_provisioned_capacity_is_bounded_as_dynamodb_bounds_it(fields: dict[str, int], message: str) -> None:
    from dropq.topology import Provisioned

    with pytest.raises(TopologyError, match=message):
        Provisioned(**fields)


def test_the_ledger_keeps_an_entry_as_long_as_a_message_can_bring_its_file_back_and_a_failed_one_longer() -> None:
    life = TOPOLOGY.message_life_seconds
    # a repeated notification kept 14 days, then a task message in its queue and its dead-letter queue
    assert life == TOPOLOGY.inbox_events.retention_seconds + max(q.retention_seconds + q.dlq_retention_seconds for q in TOPOLOGY.queues)
    assert life <= TOPOLOGY.ledger_ttl_seconds <= TOPOLOGY.failed_ttl_seconds
    with pytest.raises(TopologyError, match=r"ledger_ttl_seconds \(86400\) must be at least the \d+ s a message can bring a file back"):
        dataclasses.replace(TOPOLOGY, ledger_ttl_seconds=86400)
    with pytest.raises(TopologyError, match=r"failed_ttl_seconds \(\d+\) must be at least ledger_ttl_seconds"):
        dataclasses.replace(TOPOLOGY, failed_ttl_seconds=TOPOLOGY.ledger_ttl_seconds - 1)
