"""Finding files among thousands and retrying many (`dropq file`, `dropq files`, `dropq retry --state`) on moto: the
ledger of a deployment of its own (its tables and queues under a prefix), written through the Ledger as workers write it,
most queued and succeeded entries copies of one it wrote (tests/crowd.py)."""

from __future__ import annotations

import json
import shlex
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dropq.ledger import FAILED, QUEUED, Ledger, file_pk, ledger_for
from dropq.ledger import codec as ledger_clock
from dropq.objects import ObjectRef
from dropq.protocol import decode_task_message
from dropq.settings import Settings
from infra.local.provision import provision_queues, provision_tables, table_definition
from ops.cli import main
from ops.finding import EXAMINED_PER_PAGE, file_history, find_files
from ops.retry import retry_files
from tests.conftest import drain
from tests.crowd import Crowd, copies, crowd

ROOT = "incoming/find/"
TWICE = f"{ROOT}twice.jpg"


@dataclass
class Population:
    """What the module's ledger holds: keys by what happened to them."""

    settings: Settings
    failed_now: set[str] = field(default_factory=set)
    failed_hours_ago: set[str] = field(default_factory=set)
    failed_days_ago: set[str] = field(default_factory=set)
    succeeded: set[str] = field(default_factory=set)
    running: set[str] = field(default_factory=set)
    queued: set[str] = field(default_factory=set)
    images: set[str] = field(default_factory=set)
    # The newest version of every key.
    refs: dict[str, ObjectRef] = field(default_factory=dict)

    @property
    def entries(self) -> int:
        return sum(
            len(keys) for keys in (self.failed_now, self.failed_hours_ago, self.failed_days_ago, self.succeeded, self.running, self.queued)
        )


def _ref(settings: Settings, key: str, refs: dict[str, ObjectRef] | None = None) -> ObjectRef:
    ref = ObjectRef(bucket=settings.bucket, key=key, etag=uuid.uuid4().hex, size=100)
    if refs is not None:
        refs[key] = ref
    return ref


def _fail(ledger: Ledger, ref: ObjectRef, pipeline: str) -> None:
    claim = ledger.claim(ref, pipeline, "t1", worker="worker-1", lease_seconds=60)
    assert claim.owner and ledger.mark_failed(ref, claim.owner, f"{ref.key} is not a {pipeline} file", pipeline)


def _succeed(ledger: Ledger, ref: ObjectRef, pipeline: str) -> None:
    claim = ledger.claim(ref, pipeline, "t1", worker="worker-2", lease_seconds=60)
    assert claim.owner and ledger.mark_succeeded(ref, claim.owner, [f"processed/{pipeline}/{ref.key}/out"], 12, "0" * 64)


def _run(jobs: list[Callable[[], Any]]) -> None:
    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()


@pytest.fixture(scope="module")
def population(moto_settings: Settings) -> Iterator[Population]:
    """About 1,100 file entries: queued, running, succeeded, failed now, 2 hours and 3 days ago, one key in two versions."""
    settings = replace(moto_settings, prefix=f"find{uuid.uuid4().hex[:6]}-")
    provision_queues(settings.client("sqs"), settings)
    provision_tables(settings.client("dynamodb"), settings)
    ledger, found = ledger_for(settings), Population(settings)
    jobs: list[Callable[[], Any]] = []
    # The queued and succeeded files: one of each written by the Ledger, the others copies of it (tests/crowd.py).
    queued = [_ref(settings, f"{ROOT}queued/{i:04d}.txt", found.refs) for i in range(600)]
    ledger.mark_queued(queued[0], "metadata", "default", "t0")
    done = [_ref(settings, f"{ROOT}done/{i:03d}.csv", found.refs) for i in range(200)]
    _succeed(ledger, done[0], "tables")
    jobs += [partial(copies, ledger, queued[0], queued[1:]), partial(copies, ledger, done[0], done[1:])]
    found.queued, found.succeeded = {ref.key for ref in queued}, {ref.key for ref in done}
    for i in range(150):
        found.running.add(key := f"{ROOT}running/{i:03d}.txt")
        jobs.append(partial(ledger.claim, _ref(settings, key, found.refs), "metadata", "t0", "worker-3", 600))
    for i in range(70):
        found.failed_now.add(key := f"{ROOT}bad/{i:02d}.jpg")
        found.images.add(key)
        jobs.append(partial(_fail, ledger, _ref(settings, key, found.refs), "images"))
    for i in range(30):
        found.failed_now.add(key := f"{ROOT}urgent/{i:02d}.csv")
        jobs.append(partial(_fail, ledger, _ref(settings, key, found.refs), "tables"))
    _run(jobs)
    # Failures of hours and days ago, as the ledger wrote them then.
    now = datetime.now(UTC)
    with pytest.MonkeyPatch.context() as patch:
        for back, keys, name in ((timedelta(hours=2), found.failed_hours_ago, "old"), (timedelta(days=3), found.failed_days_ago, "older")):
            patch.setattr(ledger_clock, "now", lambda back=back: datetime.now(UTC) - back)
            for i in range(15 if name == "old" else 5):
                keys.add(key := f"{ROOT}{name}/{i:02d}.txt")
                _fail(ledger, _ref(settings, key, found.refs), "metadata")
    # One key in two versions: the first succeeded (its webhook delivered), the one that replaced it failed.
    first, second = _ref(settings, TWICE), _ref(settings, TWICE, found.refs)
    _succeed(ledger, first, "images")
    ledger.mark_webhook(
        first, {"name": "notify", "at": now.isoformat(timespec="seconds"), "state": "delivered", "status": 200, "attempts": 1}
    )
    time.sleep(0.01)
    _fail(ledger, second, "images")
    ledger.mark_webhook(second, {"name": "notify", "state": "failed", "status": 500, "attempts": 5, "reason": "gave up after 5 attempts"})
    found.failed_now.add(TWICE)
    found.images.add(TWICE)
    yield found


def dropq(population: Population, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=population.settings.environment(), input=input, catch_exceptions=False)


def listing(population: Population, *args: str) -> list[list[dict[str, Any]]]:
    """Every page of `dropq files ARGS --json`, following each page's token."""
    pages, token = [], None
    while True:
        result = dropq(population, "files", *args, "--json", *(["--page", token] if token else []))
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        pages.append(data["files"])
        token = data["next_page"]
        if token is None:
            return pages
        assert len(pages) < 100, "paging does not end"


def keys_once(pages: list[list[dict[str, Any]]]) -> set[str]:
    keys = [f["key"] for page in pages for f in page]
    duplicates = [key for key, seen in Counter(keys).items() if seen > 1]
    assert not duplicates, f"listed twice: {duplicates[:5]}"
    return set(keys)


def requests(ledger: Ledger) -> Counter[str]:
    """The DynamoDB requests `ledger` makes from now on, by operation."""
    made: Counter[str] = Counter()
    for operation in ("Query", "BatchGetItem", "Scan", "GetItem"):
        ledger.client.meta.events.register(f"before-call.dynamodb.{operation}", lambda op=operation, **_: made.update([op]))
    return made


def test_file_finds_a_key_among_thousands_with_every_version_in_one_query(population: Population) -> None:
    assert population.entries > 1000

    result = dropq(population, "file", TWICE, "--json")

    assert result.exit_code == 0, result.output
    newest, older = json.loads(result.output)["versions"]
    assert (newest["state"], newest["superseded"], older["state"], older["superseded"]) == ("failed", False, "succeeded", True)
    assert newest["reason"] == f"{TWICE} is not a images file" and newest["pipeline"] == "images" and newest["version"] is None
    attempt = newest["last_attempt"]
    assert attempt["worker"] == "worker-1" and attempt["started_at"] <= attempt["finished_at"] and attempt["duration_ms"] >= 0
    assert (newest["attempts"], newest["webhook"]["state"], newest["webhook"]["status"]) == (1, "failed", 500)
    assert older["outputs"] == [f"processed/images/{TWICE}/out"] and older["last_attempt"]["duration_ms"] == 12
    assert older["webhook"]["state"] == "delivered"
    text = dropq(population, "file", TWICE).output
    assert text.startswith(f"s3://{population.settings.bucket}/{TWICE}: 2 versions in the ledger")
    assert f"version {newest['etag']} (newest, 100 bytes): failed" in text and f"version {older['etag']} (superseded" in text
    assert f"reason    {TWICE} is not a images file" in text and "webhook   notify: failed (500) after 5 attempt(s)" in text
    # One Query on the key's partition, whatever else the ledger holds.
    ledger = ledger_for(population.settings)
    made = requests(ledger)
    assert [v["state"] for v in file_history(ledger, population.settings.bucket, f"{ROOT}queued/0007.txt")] == [QUEUED]
    assert made == Counter(Query=1)
    # A key with no entry is said so in one line.
    missing = dropq(population, "file", f"{ROOT}nope.txt")
    assert missing.exit_code == 1 and missing.output.strip().splitlines() == [
        f"Error: no file '{ROOT}nope.txt' in the ledger of s3://{population.settings.bucket}/ (keys look like 'incoming/photo.jpg')"
    ]


def test_files_lists_exactly_the_failures_since_with_pages_that_show_each_once(population: Population) -> None:
    pages = listing(population, "--state", "failed", "--since", "1h", "--limit", "40")

    assert keys_once(pages) == population.failed_now
    assert [len(page) for page in pages] == [40, 40, 21]
    times = [f["failed_at"] for page in pages for f in page]
    assert times == sorted(times, reverse=True), "newest first, across pages"
    assert all(f["state"] == FAILED and f["reason"] for page in pages for f in page)
    # Further back (the days back are in the next test).
    assert keys_once(listing(population, "--state", "failed", "--since", "3h", "--limit", "1000")) == (
        population.failed_now | population.failed_hours_ago
    )
    # By key prefix and by pipeline.
    urgent = keys_once(listing(population, "--state", "failed", "--since", "1h", "--prefix", f"{ROOT}urgent/", "--limit", "100"))
    assert urgent == {k for k in population.failed_now if k.startswith(f"{ROOT}urgent/")} and len(urgent) == 30
    assert (
        keys_once(listing(population, "--state", "failed", "--since", "1h", "--pipeline", "images", "--limit", "40")) == population.images
    )


def test_the_printed_next_page_command_continues_where_the_page_ended(population: Population) -> None:
    first = dropq(population, "files", "--state", "failed", "--since", "1h", "--limit", "50")
    assert first.exit_code == 0, first.output
    lines = first.output.strip().splitlines()
    assert lines[0].split()[:3] == ["STATE", "PIPELINE", "FAILED"] and lines[-2].startswith("50 failed files since ")
    command = shlex.split(lines[-1].removeprefix("next page: "))
    assert command[:4] == ["dropq", "files", "--state", "failed"] and command[-2] == "--page"
    shown = {line.split()[-1] for line in lines[1:-2] if not line.strip().startswith("reason:")}

    second = dropq(population, *command[1:], "--json")

    data = json.loads(second.output)
    assert len(data["files"]) == 50 and shown.isdisjoint(f["key"] for f in data["files"])
    assert len(shown) == 50 and shown | {f["key"] for f in data["files"]} <= population.failed_now
    # A token of one listing is refused by another in one line.
    other = dropq(population, "files", "--state", "succeeded", "--page", command[-1])
    assert other.exit_code == 1 and len(other.output.strip().splitlines()) == 1 and "continues a listing of failed files" in other.output


def test_other_states_are_read_from_the_recent_index_and_filtered_in_bounded_pages(population: Population) -> None:
    succeeded = listing(population, "--state", "succeeded", "--since", "1h", "--limit", "1000")
    assert keys_once(succeeded) == population.succeeded | {TWICE}, "the older version of a key that failed since"
    assert all(f["state"] == "succeeded" for page in succeeded for f in page)
    hundred = keys_once(listing(population, "--state", "queued", "--since", "1h", "--prefix", f"{ROOT}queued/00", "--limit", "1000"))
    assert hundred == {f"{ROOT}queued/{i:04d}.txt" for i in range(100)}
    # A page reads a bounded part of the index: a page of failures is a round of one query per shard and one
    # BatchGetItem; a filter few files match stops after `examine` entries (EXAMINED_PER_PAGE), with a token to read on.
    ledger = ledger_for(population.settings)
    made = requests(ledger)
    since = datetime.now(UTC) - timedelta(hours=1)
    days = 1 + (datetime.now(UTC).date() - since.date()).days
    page = find_files(ledger, since, FAILED, limit=25)
    assert len(page.files) == 25 and made["BatchGetItem"] == 1 and made["Scan"] == 0
    assert made["Query"] <= 2 * ledger.table.shards * days
    made.clear()
    rare = find_files(ledger, since, "succeeded", prefix=f"{ROOT}queued/", limit=10, examine=300)
    assert rare.files == [] and rare.next_page is not None and rare.examined == 300
    assert made["BatchGetItem"] <= 3 and made["Scan"] == 0


def test_pages_split_files_sharing_a_millisecond_exactly_and_go_back_day_by_day(moto_settings: Settings) -> None:
    # Given a ledger of 4 shards (its own table): 4 files queued 3 days ago, 3 a day ago, 24 at the same millisecond
    # 5 minutes ago, then 6 more
    spec = replace(moto_settings.topology.ledger_table, shards=4)
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    client = moto_settings.client("dynamodb")
    client.create_table(**table_definition(spec, name))
    # Kept a week: the entries of 1 and 3 days ago are within what the ledger keeps.
    ledger = Ledger(spec, name, client, ttl_seconds=7 * 86400)
    refs: dict[str, list[ObjectRef]] = {}
    with pytest.MonkeyPatch.context() as patch:
        for group, back in (("3d", timedelta(days=3)), ("1d", timedelta(days=1))):
            patch.setattr(ledger_clock, "now", lambda back=back: datetime.now(UTC) - back)
            refs[group] = [_ref(moto_settings, f"{ROOT}{group}/{i:02d}.txt") for i in range(4 if group == "3d" else 3)]
            for ref in refs[group]:
                ledger.mark_queued(ref, "metadata", "default", "t0")
                time.sleep(0.002)
        moment = datetime.now(UTC) - timedelta(minutes=5)
        patch.setattr(ledger_clock, "now", lambda: moment)
        refs["tied"] = [_ref(moto_settings, f"{ROOT}tied/{i:02d}.txt") for i in range(24)]
        _run([partial(ledger.mark_queued, ref, "metadata", "default", "t0") for ref in refs["tied"]])
    refs["later"] = [_ref(moto_settings, f"{ROOT}later/{i:02d}.txt") for i in range(6)]
    for ref in refs["later"]:
        ledger.mark_queued(ref, "metadata", "default", "t0")
        time.sleep(0.002)

    def every_page(since: datetime, limit: int) -> list[str]:
        keys: list[str] = []
        token = None
        while True:
            page = find_files(ledger, since, limit=limit, page=token)
            keys += [entry["key"] for entry in page.files]
            if (token := page.next_page) is None:
                return keys

    for limit in (1, 7):
        # When they are listed a page of `limit` at a time, over the last 4 days and the last hour
        keys = every_page(datetime.now(UTC) - timedelta(days=4), limit)
        recent = every_page(datetime.now(UTC) - timedelta(hours=1), limit)
        # Then each is listed once, newest first, the millisecond's 24 together
        assert len(keys) == len(set(keys)) == 37, limit
        newest = [r.key for r in reversed(refs["later"])]
        assert keys[:6] == newest and set(keys[6:30]) == {r.key for r in refs["tied"]}
        assert keys[30:] == [r.key for r in reversed(refs["1d"])] + [r.key for r in reversed(refs["3d"])]
        assert recent == keys[:30]


def test_retry_state_failed_queues_exactly_the_matching_failures_after_a_confirmation(population: Population) -> None:
    settings = population.settings
    queues = [q.name for q in settings.topology.queues]
    for queue in queues:
        drain(settings, queue)
    ledger = ledger_for(settings)
    count = len(population.failed_now)

    declined = dropq(population, "retry", "--state", "failed", "--since", "1h", input="n\n")
    assert declined.exit_code == 1 and f"{count} failed files match (since " in declined.output and "retry them? [y/N]" in declined.output
    assert (ledger.get(settings.bucket, TWICE) or {})["state"] == FAILED, "nothing retried when declined"
    nothing = dropq(population, "retry", "--state", "failed", "--since", "1h", "--prefix", f"{ROOT}nothing/")
    assert nothing.exit_code == 0 and nothing.output.strip().endswith(f"below {ROOT}nothing/: nothing to retry")
    assert len(nothing.output.strip().splitlines()) == 1

    result = dropq(population, "retry", "--state", "failed", "--since", "1h", "--yes")

    assert result.exit_code == 0, result.output
    assert f"retrying {count} files" in result.output
    assert result.output.strip().splitlines()[-1] == f"retried {count} of {count} files; skipped 0 that are no longer failed"
    states = {e["key"]: e["state"] for e in ledger.entries((file_pk(r.bucket, r.key), r.etag) for r in population.refs.values())}
    assert {key for key, state in states.items() if state == QUEUED} == population.queued | population.failed_now
    assert {key for key, state in states.items() if state == FAILED} == population.failed_hours_ago | population.failed_days_ago
    sent = Counter(decode_task_message(m["Body"])["body"]["kwargs"]["key"] for queue in queues for m in drain(settings, queue))
    assert set(sent) == population.failed_now and set(sent.values()) == {1}, "one message per file"
    # A file that is no longer failed by the time it is retried is skipped, with why.
    again = retry_files([TWICE, f"{ROOT}old/00.txt"], settings, ledger, settings.client("sqs"))
    assert [item.ref.key for item in again.queued] == [f"{ROOT}old/00.txt"]
    assert again.skipped == {TWICE: f"{TWICE} is queued, not failed: only a failed file is retried (or a succeeded one, with --force)"}


CROWD = 4000
NEEDLE = "incoming/crowd/reports/2026/needle.csv"


@pytest.fixture(scope="module")
def crowded(moto_settings: Settings) -> Crowd:
    """4,000 succeeded files queued after the needle, a key in two versions (tests/crowd.py)."""
    return crowd(moto_settings, NEEDLE, CROWD)


def test_a_file_among_thousands_is_found_by_its_key_by_its_state_and_by_a_prefix_read_page_by_page(crowded: Crowd) -> None:
    run = Population(crowded.settings)
    ledger = ledger_for(crowded.settings)
    made = requests(ledger)
    # By its key: every version, one Query.
    (newest, older) = file_history(ledger, crowded.settings.bucket, NEEDLE)
    assert (newest["state"], older["state"], made) == (FAILED, "succeeded", Counter(Query=1))
    assert len(crowded.keys) == CROWD
    # By its state: the failed index holds the failures only, so the first page has it.
    failed = dropq(run, "files", "--state", "failed", "--since", "1h", "--json")
    assert [f["key"] for f in json.loads(failed.output)["files"]] == [NEEDLE]

    # By a prefix, among 4,000 newer files: each page reads a bounded part of the index, and says where to read on.
    pages, examined, token = [], [], None
    while True:
        args = ["files", "--state", "succeeded", "--since", "1h", "--prefix", "incoming/crowd/reports/", "--json"]
        data = json.loads(dropq(run, *args, *(["--page", token] if token else [])).output)
        pages.append([f["key"] for f in data["files"]])
        examined.append(data["examined"])
        token = data["next_page"]
        if token is None:
            break
        assert len(pages) < 20, "paging does not end"

    assert [key for page in pages for key in page] == [NEEDLE]
    assert len(pages) >= CROWD // EXAMINED_PER_PAGE and max(examined) <= EXAMINED_PER_PAGE
    assert sum(examined) >= CROWD, "read past every newer file, a page at a time"
