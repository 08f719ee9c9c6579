"""The dashboard in a real headless Chromium over the local cloud: a dropped file moving to succeeded, the pools, and the
actions (redrive, retry, purge with its confirmation) clicked on the page. The test saves a screenshot in artifacts/."""

from __future__ import annotations

import io
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

from dropq.enqueue import plan
from dropq.ledger import QUEUED, SUCCEEDED, Ledger
from dropq.objects import ObjectRef
from infra.local.cloud import LocalCloud
from infra.local.server import free_port
from ops.cli import main
from ops.dashboard.server import Dashboard
from ops.status import queue_counts
from tests.browser import dashboard_page
from tests.conftest import wait_for, wait_for_outcome

pytestmark = pytest.mark.e2e

SCREENSHOT = Path(__file__).resolve().parents[2] / "artifacts" / "dashboard.png"
# Playwright's waits, in milliseconds: a file goes through the producer and a worker in a few seconds.
PAGE_TIMEOUT_MS = 60_000
# Waits by locator (the page's policy forbids the eval a waited-for JavaScript string needs), as long as the page's.
expect.set_options(timeout=PAGE_TIMEOUT_MS)


@pytest.fixture(scope="module")
def dashboard(cloud: LocalCloud) -> Iterator[Dashboard]:
    board = Dashboard(cloud.deployment, port=free_port(), interval=0.5).start()
    yield board
    board.stop()


@pytest.fixture
def page(dashboard: Dashboard) -> Iterator[Page]:
    with dashboard_page(dashboard.url, "body[data-loaded=true]", PAGE_TIMEOUT_MS) as opened:
        yield opened


def park(cloud: LocalCloud, name: str) -> ObjectRef:
    """An object outside the inbox (no S3 event, so nothing processes it until the test says so)."""
    key = f"parked/{uuid.uuid4().hex}/{name}"
    s3 = cloud.settings.client("s3")
    etag = s3.put_object(Bucket=cloud.settings.bucket, Key=key, Body=b"parked until the dashboard acts\n")["ETag"].strip('"')
    return ObjectRef(bucket=cloud.settings.bucket, key=key, etag=etag, size=32)


def cell(page: Page, row: str, column: str) -> str:
    return page.locator(f"{row} .{column}").inner_text()


def test_the_page_shows_a_dropped_file_reach_succeeded_with_its_outputs_and_the_pools(
    cloud: LocalCloud, cloud_ledger: Ledger, page: Page
) -> None:
    key = f"incoming/dashboard/{uuid.uuid4().hex}.txt"
    cloud.settings.client("s3").put_object(Bucket=cloud.settings.bucket, Key=key, Body=b"watched from the dashboard\n")

    row = f'tr[data-key="{key}"]'
    page.wait_for_selector(row)
    seen = {cell(page, row, "state")}
    deadline = time.monotonic() + 60
    while "succeeded" not in seen and time.monotonic() < deadline:
        time.sleep(0.1)
        seen.add(cell(page, row, "state"))
    assert "succeeded" in seen, f"the page showed only {seen}"
    assert seen <= {QUEUED, "running", SUCCEEDED}

    # Its output is linked, and the link serves the output's bytes.
    link = page.locator(f"{row} .outputs a")
    assert link.inner_text() == "metadata.json"
    output = page.request.get(link.evaluate("a => a.href"))
    assert output.ok and b'"sha256"' in output.body()
    # The default pool runs its pinned worker (heartbeat) and ECS wants it (the local cloud's desired count).
    expect(page.locator("tr[data-pool=default] .workers")).to_have_text("1")
    assert cell(page, "tr[data-pool=default]", "desired") == "1"
    assert cell(page, "tr[data-pool=heavy]", "desired") == "0"
    page.wait_for_selector("#throughput rect[height]:not([height='0'])", state="attached")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert cloud_ledger.get(cloud.settings.bucket, key)["state"] == SUCCEEDED


def test_redrive_from_the_page_empties_the_dead_letter_queue_and_the_file_is_processed(
    cloud: LocalCloud, cloud_ledger: Ledger, page: Page
) -> None:
    # Given a file whose task died too often: running in the ledger with its lease run out, its message in the default
    # queue's DLQ
    settings = cloud.settings
    ref = park(cloud, "died.txt")
    item = plan(ref, settings)
    assert cloud_ledger.claim(ref, item.pipeline, item.task_id, worker="gone", lease_seconds=0, queue=item.queue).acquired
    sqs = settings.client("sqs")
    dlq_url = settings.queue_url(settings.topology.queue(item.queue).dlq_name)
    sqs.send_message(QueueUrl=dlq_url, MessageBody=item.body)
    row = f"tr[data-queue={item.queue}]"
    expect(page.locator(f"{row} .dead")).to_have_text("1")

    # When the operator clicks Redrive
    page.click(f"{row} button.redrive")

    # Then the DLQ is empty, on the page and in SQS, and a worker processes the file
    expect(page.locator(f"{row} .dead")).to_have_text("0")
    assert page.locator("#message").inner_text() == f"1 message(s) moved back to {settings.physical_name(item.queue)}"
    assert sum(queue_counts(sqs, dlq_url).values()) == 0
    assert wait_for_outcome(cloud_ledger, settings.bucket, ref.key)["state"] == SUCCEEDED


def test_retry_from_the_page_processes_a_failed_file_again(cloud: LocalCloud, cloud_ledger: Ledger, page: Page) -> None:
    # Given a file that failed after using up its attempts (during an outage, say)
    ref = park(cloud, "gave-up.txt")
    for _ in range(cloud.settings.max_retries):
        attempt = cloud_ledger.claim(ref, "metadata", "t-gave-up", worker="w", lease_seconds=30)
        assert attempt.owner and cloud_ledger.release(ref, attempt.owner)
    claim = cloud_ledger.claim(ref, "metadata", "t-gave-up", worker="w", lease_seconds=30)
    assert claim.owner and cloud_ledger.mark_failed(ref, claim.owner, "S3 was unreachable for every retry", pipeline="metadata")
    row = f'tr[data-key="{ref.key}"]'
    page.wait_for_selector(f"{row} button.retry")
    assert cell(page, row, "reason") == "S3 was unreachable for every retry"

    page.click(f"{row} button.retry")

    entry = wait_for(
        lambda: (e := cloud_ledger.get(ref.bucket, ref.key)) and e["state"] == SUCCEEDED and e, 60, "the retried file to succeed"
    )
    assert (entry["retries"], entry["attempts"], entry.get("reason")) == (1, 1, None)
    expect(page.locator(f"{row} .state")).to_have_text("succeeded")


def test_purge_asks_for_confirmation_and_deletes_nothing_when_declined(cloud: LocalCloud, page: Page) -> None:
    settings = cloud.settings
    sqs = settings.client("sqs")
    dlq_url = settings.queue_url("urgent-dlq")
    sqs.send_message(QueueUrl=dlq_url, MessageBody="not a task: poison")
    row = "tr[data-queue=urgent]"
    expect(page.locator(f"{row} .dead")).to_have_text("1")
    prompts: list[str] = []

    # Declined: nothing is deleted
    page.once("dialog", lambda dialog: (prompts.append(dialog.message), dialog.dismiss()))
    page.click(f"{row} button.purge")
    wait_for(lambda: prompts, 10, "the confirmation")
    assert "cannot be recovered" in prompts[0]
    time.sleep(1)
    assert queue_counts(sqs, dlq_url)["visible"] == 1

    # Accepted: the dead letter is gone
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"{row} button.purge")
    expect(page.locator(f"{row} .dead")).to_have_text("0")
    assert sum(queue_counts(sqs, dlq_url).values()) == 0
    assert page.locator("#message").inner_text() == f"1 dead letter(s) of {settings.physical_name('urgent')} deleted"


@pytest.fixture(scope="module")
def guarded(cloud: LocalCloud) -> Iterator[Dashboard]:
    """The dashboard in token mode (what binding beyond loopback turns on), here on loopback with a token of its own."""
    board = Dashboard(cloud.deployment, port=free_port(), token="t-" + uuid.uuid4().hex, interval=0.5).start()
    yield board
    board.stop()


def test_in_token_mode_the_page_works_with_its_token_and_nothing_answers_without_it(guarded: Dashboard) -> None:
    chromium = shutil.which("chromium")
    assert chromium
    base = guarded.url.split("#", 1)[0]
    violations: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        page = browser.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        page.on("console", lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None)

        # Without the token: the page loads but reads nothing, and says why
        response = page.goto(base)
        assert response is not None
        expect(page.locator("#message")).to_contain_text("403")
        assert "needs its token" in page.locator("#message").inner_text()
        assert page.locator("body[data-loaded=true]").count() == 0 and page.locator("#files tbody tr").count() == 0
        # and its headers forbid what the page does not need
        headers = response.headers
        policy = headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"

        # With the token in the URL's fragment (a page of its own: a new fragment alone would not load it again): it
        # works, under that policy, without a violation
        page.close()
        page = browser.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        page.on("console", lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None)
        page.goto(guarded.url)
        page.wait_for_selector("body[data-loaded=true]")
        assert page.locator("tr[data-queue=default]").count() == 1
        assert violations == [], violations

        # An action, or an output, asked for without the token is refused, from the page itself as from anywhere
        statuses = page.evaluate(
            """async () => {
                const post = (path, body) => fetch(path, {method: 'POST', headers: {'Content-Type': 'application/json'}, body});
                return [
                    (await post('/api/queues/default/redrive', '{}')).status,
                    (await post('/api/files/retry', '{"key": "x"}')).status,
                    (await fetch('/api/state')).status,
                    (await fetch('/outputs/processed/x', {redirect: 'manual'})).status,
                ];
            }"""
        )
        assert statuses == [403, 403, 403, 403]
        api = page.request.get(f"{base}api/state", headers={"X-Dropq-Token": guarded.token or ""})
        assert api.ok and api.headers["cache-control"] == "no-store"
        browser.close()


def test_a_key_uploaded_again_is_one_row_its_failed_version_marked_superseded_and_not_retried(
    cloud: LocalCloud, cloud_ledger: Ledger, page: Page
) -> None:
    key, s3, bucket = f"incoming/versions-{uuid.uuid4().hex[:8]}/broken.jpg", cloud.settings.client("s3"), cloud.settings.bucket
    broken = s3.put_object(Bucket=bucket, Key=key, Body=b"\xff\xd8\xff\xe0 truncated")["ETag"].strip('"')
    assert wait_for_outcome(cloud_ledger, bucket, key)["state"] == "failed"
    image = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(image, "JPEG")
    good = s3.put_object(Bucket=bucket, Key=key, Body=image.getvalue())["ETag"].strip('"')
    wait_for(lambda: (e := cloud_ledger.get(bucket, key)) and e["sk"] == good and e["state"] == SUCCEEDED, 60, "the new upload")

    # The page: one row, the newest version's, with the failed one marked superseded and no Retry button
    row = f'tr[data-key="{key}"]'
    expect(page.locator(f"{row} .state")).to_have_text("succeeded")
    assert page.locator(row).count() == 1 and page.locator(f"{row} button.retry").count() == 0
    expect(page.locator(f"{row} .older-version")).to_contain_text(f"superseded: ETag {broken}, failed at")

    # The CLI: status lists the key once; a retry says what happened instead of refusing
    env = cloud.exports()
    status = json.loads(CliRunner().invoke(main, ["status", "--json", "--limit", "200"], env=env).output)
    (mine,) = [f for f in status["files"] if f["key"] == key]
    assert (mine["etag"], mine["state"], [(v["etag"], v["state"]) for v in mine["superseded"]]) == (good, "succeeded", [(broken, "failed")])
    retried = CliRunner().invoke(main, ["retry", key], env=env)
    assert retried.exit_code == 1
    assert f"the version that failed (ETag {broken}) was replaced by a newer upload (ETag {good}" in retried.output
    assert "which succeeded: nothing to retry" in retried.output
