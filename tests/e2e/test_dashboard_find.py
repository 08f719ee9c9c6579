"""The dashboard's "Find files" in a real headless Chromium: among a few hundred ledger entries (and, in a ledger of
its own, behind thousands newer), the search box finds a file by its key prefix, the filters narrow by state and
pipeline, pages go forth and back, a file's page shows its timeline per version, and "retry all shown failures" asks
first and then queues exactly the failures shown. The first test saves a screenshot in artifacts/.

The ledger is a deployment of its own on the session's moto server (its tables and queues under a prefix, no workers),
written through the Ledger as workers write it (or copied from an entry it wrote, tests/crowd.py): a retried file
stays queued, so what a retry did is read off exactly."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Dialog, Page, expect

from dropq.deployment import local_deployment
from dropq.ledger import FAILED, QUEUED, RETRIED, Ledger, ledger_for
from dropq.objects import ObjectRef
from dropq.settings import Settings
from infra.local.provision import provision_queues, provision_services, provision_tables
from infra.local.server import free_port
from ops.dashboard.server import Dashboard
from ops.finding import EXAMINED_PER_PAGE
from ops.status import queue_counts
from tests.browser import dashboard_page
from tests.crowd import Crowd, copies, crowd

pytestmark = pytest.mark.e2e

SCREENSHOT = Path(__file__).resolve().parents[2] / "artifacts" / "dashboard-find.png"
PAGE_TIMEOUT_MS = 30_000
expect.set_options(timeout=PAGE_TIMEOUT_MS)
ROOT = "incoming/found/"
# The one file the search box looks for: two versions, the first succeeded (a real output), the newer one failed.
NEEDLE = f"{ROOT}needle/report-7f3a.csv"
NEEDLE_REASON = "line 3 has 4 fields, the header 3: not a CSV file"
NEEDLE_OUTPUT = f"processed/tables/{NEEDLE}/profile.json"


@dataclass
class Population:
    settings: Settings
    ledger: Ledger
    succeeded: set[str] = field(default_factory=set)
    queued: set[str] = field(default_factory=set)
    failed_images: set[str] = field(default_factory=set)


def _ref(settings: Settings, key: str) -> ObjectRef:
    return ObjectRef(bucket=settings.bucket, key=key, etag=uuid.uuid4().hex, size=100)


def _succeed(ledger: Ledger, ref: ObjectRef, pipeline: str, outputs: list[str]) -> None:
    claim = ledger.claim(ref, pipeline, "t1", worker="worker-2", lease_seconds=60)
    assert claim.owner and ledger.mark_succeeded(ref, claim.owner, outputs, 1234, "0" * 64, version=2)


def _fail(ledger: Ledger, ref: ObjectRef, pipeline: str, reason: str) -> None:
    claim = ledger.claim(ref, pipeline, "t1", worker="worker-1", lease_seconds=60)
    assert claim.owner and ledger.mark_failed(ref, claim.owner, reason, pipeline)


@pytest.fixture(scope="module")
def population(moto_settings: Settings) -> Population:
    """311 file entries: 240 succeeded, 40 queued, 30 failed images and the needle (two versions, the newest failed)."""
    settings = replace(moto_settings, prefix=f"dash{uuid.uuid4().hex[:6]}-")
    provision_queues(settings.client("sqs"), settings)
    provision_tables(settings.client("dynamodb"), settings)
    provision_services(settings.client("ecs"), settings)
    found = Population(settings, ledger_for(settings))
    ledger = found.ledger
    jobs: list[Callable[[], Any]] = []
    # The succeeded files: one written by the Ledger, the others copies of it (tests/crowd.py).
    done = [_ref(settings, f"{ROOT}done/{i:03d}.txt") for i in range(240)]
    _succeed(ledger, done[0], "metadata", [f"processed/metadata/{done[0].key}/metadata.json"])
    jobs.append(partial(copies, ledger, done[0], done[1:]))
    found.succeeded = {ref.key for ref in done}
    for i in range(40):
        found.queued.add(key := f"{ROOT}waiting/{i:02d}.txt")
        jobs.append(partial(ledger.mark_queued, _ref(settings, key), "metadata", "default", "t0"))
    for i in range(30):
        found.failed_images.add(key := f"{ROOT}bad/{i:02d}.jpg")
        jobs.append(partial(_fail, ledger, _ref(settings, key), "images", "image file is truncated"))
    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()
    first, second = _ref(settings, NEEDLE), _ref(settings, NEEDLE)
    settings.client("s3").put_object(Bucket=settings.bucket, Key=NEEDLE_OUTPUT, Body=b'{"rows": 3}')
    _succeed(ledger, first, "tables", [NEEDLE_OUTPUT])
    ledger.mark_webhook(first, {"name": "notify", "state": "delivered", "status": 200, "attempts": 1})
    # The newer version's first attempt was given back (a transient error); its second failed.
    given_back = ledger.claim(second, "tables", "t1", worker="worker-3", lease_seconds=60)
    assert given_back.owner and ledger.release(second, given_back.owner, ended=[given_back.ended(RETRIED, "transient error: S3 timed out")])
    _fail(ledger, second, "tables", NEEDLE_REASON)
    return found


@pytest.fixture(scope="module")
def dashboard(population: Population) -> Iterator[Dashboard]:
    board = Dashboard(local_deployment(population.settings), port=free_port(), interval=2).start()
    yield board
    board.stop()


@pytest.fixture
def page(dashboard: Dashboard) -> Iterator[Page]:
    with dashboard_page(dashboard.url, "#find[data-ready=true]", PAGE_TIMEOUT_MS) as opened:
        yield opened


def search(page: Page, prefix: str, state: str = "", pipeline: str = "", since: str = "1d") -> None:
    page.fill("#find-prefix", prefix)
    page.select_option("#find-state", state)
    page.select_option("#find-pipeline", pipeline)
    page.select_option("#find-since", since)
    page.click("#find-search")
    page.wait_for_selector("#find[data-loaded=true]")


def shown(page: Page, column: str = "key") -> list[str]:
    return page.locator(f"#found tbody td.{column}").all_inner_texts()


def test_the_search_box_finds_a_file_by_its_key_prefix_and_its_page_shows_each_version_s_timeline(page: Page) -> None:
    # Given a few hundred files in the ledger, when the operator types the needle's folder into the search box
    search(page, f"{ROOT}needle/")

    # Then the one file is listed, a row per version (as `dropq files` lists them), newest first, with its state,
    # pipeline, version and reason
    rows = page.locator("#found tbody tr")
    expect(rows).to_have_count(2)
    assert shown(page) == [NEEDLE, NEEDLE]
    cells = [[rows.nth(n).locator(f"td.{c}").inner_text() for c in ("state", "pipeline", "version", "reason")] for n in (0, 1)]
    assert cells == [[FAILED, "tables", "", NEEDLE_REASON], ["succeeded", "tables", "2", ""]]
    row = rows.nth(0)

    # When its key is clicked, its page shows both versions, newest first, the older marked superseded
    row.locator("td.key a").click()
    page.wait_for_selector("#file[data-loaded=true]")
    assert page.locator("#file-key").inner_text() == NEEDLE
    versions = page.locator("#file-versions .version")
    expect(versions).to_have_count(2)
    newest, older = versions.nth(0), versions.nth(1)
    assert "newest" in newest.locator("h3").inner_text() and "superseded" in older.locator("h3").inner_text()
    assert "superseded" in (older.get_attribute("class") or "")
    # each with its timeline: its entry -> each attempt (its start, end and worker) -> the outcome (the reason; or the
    # duration and outputs)
    assert newest.locator(".queued").inner_text().startswith("in the ledger since ")
    first_attempt, last_attempt = newest.locator(".attempt.earlier").inner_text(), newest.locator(".attempt").nth(1).inner_text()
    assert first_attempt.startswith("attempt 1 started ") and "on worker-3, ended " in first_attempt
    assert first_attempt.endswith(": retried (transient error: S3 timed out)")
    assert "attempt 2 started" in last_attempt and "on worker-1" in last_attempt
    assert older.locator(".attempt").count() == 1 and "attempt 1 started" in older.locator(".attempt").inner_text()
    assert newest.locator(".outcome").inner_text().startswith("failed ") and NEEDLE_REASON in newest.locator(".outcome").inner_text()
    assert newest.locator(".outputs").inner_text() == "outputs: none"
    assert "(pipeline version ?)" in newest.locator("h3").inner_text()
    assert "succeeded" in older.locator(".outcome").inner_text() and "in 1.2 s" in older.locator(".outcome").inner_text()
    assert "(pipeline version 2)" in older.locator("h3").inner_text()
    assert older.locator(".webhook").inner_text() == "webhook: notify: delivered (200) after 1 attempt(s)"
    # and the output's link serves the output's bytes
    link = older.locator(".outputs a")
    assert link.inner_text() == "profile.json"
    served = page.request.get(link.evaluate("a => a.href"))
    assert served.ok and served.body() == b'{"rows": 3}'
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # A file page is a link of its own (the fragment), and one of an unknown key says so
    page.goto(page.url.split("#")[0] + "#file=incoming/found/never.txt")
    page.wait_for_selector("#file[data-loaded=true]")
    assert "no file 'incoming/found/never.txt' in the ledger" in page.locator("#file-versions").inner_text()


def test_the_filters_narrow_by_state_and_pipeline_and_pages_go_next_and_back(page: Page, population: Population) -> None:
    # State: every failure below the root, the needle among them, and nothing else
    search(page, ROOT, state=FAILED)
    assert set(shown(page)) == population.failed_images | {NEEDLE}
    assert set(shown(page, "state")) == {FAILED}
    # State and pipeline: the images only
    search(page, ROOT, state=FAILED, pipeline="images")
    assert set(shown(page)) == population.failed_images
    search(page, ROOT, state=QUEUED)
    assert set(shown(page)) == population.queued and "; no more" in page.locator("#find-summary").inner_text()

    # Pages: the 240 succeeded files below done/, 50 a page, each shown once; Previous goes back to the page before
    search(page, f"{ROOT}done/", state="succeeded")
    first = shown(page)
    assert len(first) == 50 and set(first) <= population.succeeded
    assert page.locator("#find-previous").is_disabled() and page.locator("#find-next").is_enabled()
    seen = list(first)
    for number in range(2, 6):
        page.click("#find-next")
        expect(page.locator("#find-summary")).to_contain_text(f"page {number}:")
        page.wait_for_selector("#find[data-loaded=true]")
        seen += shown(page)
    assert len(seen) == len(set(seen)) == 240 and set(seen) == population.succeeded
    page.click("#find-previous")
    expect(page.locator("#find-summary")).to_contain_text("page 4:")
    page.wait_for_selector("#find[data-loaded=true]")
    assert shown(page) == seen[150:200]
    # The retry button is for failures only
    assert page.locator("#retry-shown").is_hidden()


def test_retry_all_shown_failures_asks_first_then_queues_exactly_the_failures_shown(page: Page, population: Population) -> None:
    settings, ledger = population.settings, population.ledger
    queue = settings.queue_url("default")
    # Given the failed images shown (the needle, a failed table, is not)
    search(page, ROOT, state=FAILED, pipeline="images")
    button = page.locator("#retry-shown")
    expect(button).to_have_text("Retry all shown failures (30)")
    asked: list[str] = []

    def answer(accept: bool) -> Callable[[Dialog], None]:
        def respond(dialog: Dialog) -> None:
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        return respond

    # When the operator declines the confirmation, nothing changes
    page.once("dialog", answer(False))
    button.click()
    assert asked and "Retry the 30 failed file(s) shown" in asked[0]
    assert {ledger.get(settings.bucket, k)["state"] for k in population.failed_images | {NEEDLE}} == {FAILED}
    assert queue_counts(settings.client("sqs"), queue)["visible"] == 0

    # When they accept, exactly the shown failures are queued again, each with its task sent; the needle stays failed
    page.once("dialog", answer(True))
    button.click()
    expect(page.locator("#message")).to_have_text("30 of 30 shown failure(s) queued again")
    entries = {k: ledger.get(settings.bucket, k) for k in population.failed_images}
    assert {(e["state"], e["retries"]) for e in entries.values()} == {(QUEUED, 1)}
    needle = ledger.get(settings.bucket, NEEDLE)
    assert (needle["state"], needle.get("retries", 0)) == (FAILED, 0)
    assert queue_counts(settings.client("sqs"), queue)["visible"] == 30
    # and the search shown again has no failures left to retry
    expect(page.locator("#found tbody tr")).to_have_count(0)
    assert button.is_hidden()


# A ledger of its own: 3,000 files queued after the one looked for.
CROWD = 3000
CROWD_NEEDLE = "incoming/crowd/reports/2026/needle.csv"


@pytest.fixture(scope="module")
def crowded(moto_settings: Settings) -> Iterator[tuple[Crowd, Dashboard]]:
    found = crowd(moto_settings, CROWD_NEEDLE, CROWD)
    board = Dashboard(local_deployment(found.settings), port=free_port(), interval=2).start()
    yield found, board
    board.stop()


def test_the_search_box_finds_a_file_among_thousands_newer_reading_on_a_bounded_page_at_a_time(crowded: tuple[Crowd, Dashboard]) -> None:
    found, board = crowded
    with dashboard_page(board.url, "#find[data-ready=true]", PAGE_TIMEOUT_MS) as page:
        # When the operator searches the needle's folder, a page reads at most 1,000 entries of the index: none of
        # the first ones match, and the page says how far back it read and that more may match
        search(page, "incoming/crowd/reports/")
        assert shown(page) == []
        expect(page.locator("#find-summary")).to_contain_text("more may match")
        # Then Next reads on from there, until the needle's two versions are shown
        pages = 1
        while not shown(page):
            assert page.locator("#find-next").is_enabled() and pages < 10
            page.click("#find-next")
            pages += 1
            expect(page.locator("#find-summary")).to_contain_text(f"page {pages}:")
            page.wait_for_selector("#find[data-loaded=true]")
        assert shown(page) == [CROWD_NEEDLE, CROWD_NEEDLE] and shown(page, "state") == [FAILED, "succeeded"]
        assert pages >= CROWD // EXAMINED_PER_PAGE
        # and its page shows both versions, the failure's reason on the newest
        page.locator("#found tbody tr").nth(0).locator("td.key a").click()
        page.wait_for_selector("#file[data-loaded=true]")
        expect(page.locator("#file-versions .version")).to_have_count(2)
        assert found.reason in page.locator("#file-versions .version").nth(0).locator(".outcome").inner_text()
