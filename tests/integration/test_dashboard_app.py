"""The dashboard's web application against moto: its JSON, and who may act (loopback names only, the token elsewhere)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from dropq.deployment import local_deployment
from dropq.ledger import FAILED_INDEX, ledger_for
from dropq.objects import ObjectRef
from dropq.settings import Settings
from ops.dashboard.app import TOKEN_HEADER, create_app
from ops.dashboard.monitor import Monitor
from ops.dashboard.server import Dashboard
from ops.finding import encode_page
from ops.status import queue_counts
from tests.conftest import drain

LOOPBACK = {"Host": "127.0.0.1:8321"}


@pytest.fixture(scope="module")
def monitor(moto_settings: Settings) -> Monitor:
    return Monitor(local_deployment(moto_settings), interval=60)


@pytest.fixture
def loopback(monitor: Monitor) -> Iterator[FlaskClient]:
    yield create_app(monitor).test_client()


@pytest.fixture
def exposed(monitor: Monitor) -> Iterator[FlaskClient]:
    yield create_app(monitor, token="s3cret", loopback_host=None).test_client()


def test_the_state_has_every_queue_pool_and_an_hour_of_throughput(loopback: FlaskClient) -> None:
    state = loopback.get("/api/state", headers=LOOPBACK).get_json()
    assert [q["name"] for q in state["queues"]] == ["default", "heavy", "urgent"]
    assert [(p["name"], p["desired"]) for p in state["pools"]] == [("default", 0), ("heavy", 0), ("urgent", 0)]
    assert len(state["throughput"]) == 60 and state["depths"][-1]["at"] == state["at"]
    page = loopback.get("/", headers=LOOPBACK)
    assert page.status_code == 200 and b"/static/dashboard.js" in page.data
    assert loopback.get("/static/dashboard.js", headers=LOOPBACK).status_code == 200


def test_on_loopback_a_request_for_another_host_name_is_refused(monitor: Monitor, loopback: FlaskClient) -> None:
    # A page on evil.example whose name was rebound to 127.0.0.1 reaches the server with its own Host.
    assert loopback.get("/api/state", headers={"Host": "evil.example:8321"}).status_code == 403
    assert loopback.get("/api/state", headers={"Host": "localhost:8321"}).status_code == 200
    # Bound to another loopback address, it answers to that one too.
    other = create_app(monitor, loopback_host="127.0.0.2").test_client()
    assert other.get("/api/state", headers={"Host": "127.0.0.2:8321"}).status_code == 200
    assert other.get("/api/state", headers={"Host": "evil.example:8321"}).status_code == 403


def test_an_action_takes_json_only(loopback: FlaskClient) -> None:
    # A form on another site posts form data; it never reaches the action.
    response = loopback.post("/api/queues/default/redrive", headers=LOOPBACK, data={"x": "1"})
    assert response.status_code == 415


def test_purge_needs_the_queue_named_in_its_confirmation(moto_settings: Settings, loopback: FlaskClient) -> None:
    sqs, url = moto_settings.client("sqs"), moto_settings.queue_url("heavy-dlq")
    drain(moto_settings, "heavy-dlq")
    sqs.send_message(QueueUrl=url, MessageBody="poison")

    refused = loopback.post("/api/queues/heavy/purge", headers=LOOPBACK, json={})
    assert refused.status_code == 400 and queue_counts(sqs, url)["visible"] == 1

    done = loopback.post("/api/queues/heavy/purge", headers=LOOPBACK, json={"confirm": "heavy"})
    assert done.get_json() == {"queue": "heavy", "deleted": 1}
    assert loopback.post("/api/queues/nope/purge", headers=LOOPBACK, json={"confirm": "nope"}).status_code == 404


def test_retrying_a_file_that_is_not_failed_says_why(loopback: FlaskClient) -> None:
    response = loopback.post("/api/files/retry", headers=LOOPBACK, json={"key": "incoming/never-dropped.txt"})
    assert response.status_code == 409
    assert "no file 'incoming/never-dropped.txt' in the ledger" in response.get_json()["error"]


def test_beyond_loopback_every_api_call_needs_the_token(exposed: FlaskClient) -> None:
    headers = {"Host": "10.0.0.5:8321"}
    assert exposed.get("/", headers=headers).status_code == 200  # the page itself holds nothing
    assert exposed.get("/api/state", headers=headers).status_code == 403
    assert exposed.get("/api/state", headers={**headers, TOKEN_HEADER: "wrong"}).status_code == 403
    assert exposed.get("/api/state", headers={**headers, TOKEN_HEADER: "s3cret"}).status_code == 200
    assert exposed.post("/api/queues/default/redrive", headers=headers, json={}).status_code == 403
    assert exposed.post("/api/queues/default/redrive", headers={**headers, TOKEN_HEADER: "s3cret"}, json={}).status_code == 200
    assert exposed.get("/outputs/processed/x", headers=headers).status_code == 403
    # Each refusal says why, as JSON, whichever call the page made first
    why = "this dashboard needs its token: open the URL `dropq dashboard` printed"
    for path in ("/api/state", "/api/find-options", "/outputs/processed/x"):
        assert exposed.get(path, headers=headers).get_json() == {"error": why}


def test_bound_beyond_loopback_the_dashboard_makes_up_a_token_and_puts_it_in_its_url(moto_settings: Settings) -> None:
    exposed = Dashboard(local_deployment(moto_settings), host="0.0.0.0", port=8321)
    assert exposed.token and exposed.url == f"http://0.0.0.0:8321/#token={exposed.token}"
    assert Dashboard(local_deployment(moto_settings), host="127.0.0.1", port=8321).url == "http://127.0.0.1:8321/"


def test_the_search_answers_bad_input_with_400_and_a_one_line_message(loopback: FlaskClient) -> None:
    def refused(query: str) -> str:
        response = loopback.get(f"/api/files?{query}", headers=LOOPBACK)
        assert response.status_code == 400, (query, response.get_data(as_text=True))
        return response.get_json()["error"]

    assert refused("since=yesterday").startswith("since 'yesterday' is neither a duration (90s, 30m, 1h, 2d) nor an ISO time")
    assert "is in the future" in refused("since=2999-01-01T00:00Z")
    assert refused("state=lost") == "state 'lost' is not one of the ledger's states: queued, running, succeeded, failed"
    assert refused("pipeline=audio").startswith("pipeline 'audio' is no pipeline of this deployment's routes; known: images, metadata")
    assert refused("limit=0") == "limit 0 is outside 1..1000" and refused("limit=lots").startswith("limit 'lots' is not a number")
    assert "is not a page of this search" in refused("page=not-a-token")
    # A token of the failures' listing does not continue a listing of another state.
    token = encode_page(FAILED_INDEX, ("2026-12-01T20:15:03.120Z", "file#s3://dropq-local/incoming/x.txt", "etag"))
    assert "is not a page of this search" in refused(f"state=queued&page={token}")
    answer = loopback.get(f"/api/files?state=failed&since=1h&page={token}", headers=LOOPBACK)
    assert answer.status_code == 200 and set(answer.get_json()) >= {"files", "next_page", "examined", "since"}


def test_the_search_offers_the_topology_s_pipelines_and_the_ledger_s_states(loopback: FlaskClient) -> None:
    options = loopback.get("/api/find-options", headers=LOOPBACK).get_json()
    assert options == {
        "states": ["queued", "running", "succeeded", "failed"],
        "pipelines": ["images", "metadata", "tables"],
        "since": ["1h", "1d", "7d"],
        "default_since": "1d",
    }


def test_a_file_unknown_to_the_ledger_is_404_with_why(loopback: FlaskClient) -> None:
    unknown = loopback.get("/api/file?key=incoming/never-dropped.txt", headers=LOOPBACK)
    assert unknown.status_code == 404
    assert unknown.get_json()["error"].startswith("no file 'incoming/never-dropped.txt' in the ledger of s3://")
    missing = loopback.get("/api/file", headers=LOOPBACK)
    assert missing.status_code == 400 and "name the file" in missing.get_json()["error"]


def test_retry_many_retries_failures_only_and_says_what_it_skipped(loopback: FlaskClient) -> None:
    def post(body: dict[str, object]) -> tuple[int, dict[str, object]]:
        response = loopback.post("/api/retry-many", headers=LOOPBACK, json=body)
        return response.status_code, response.get_json()

    status, answer = post({"state": "succeeded", "keys": ["incoming/a.txt"]})
    assert status == 400 and str(answer["error"]).startswith("state 'succeeded': only failed files are retried")
    status, answer = post({"state": "failed", "keys": "incoming/a.txt"})
    assert status == 400 and str(answer["error"]).startswith("keys must be a list")
    response = loopback.post("/api/retry-many", headers=LOOPBACK, json=["incoming/a.txt"])
    assert response.status_code == 400 and response.get_json()["error"].startswith("send a JSON object")
    status, answer = post({"state": "failed", "since": "soon", "keys": ["incoming/a.txt"]})
    assert status == 400 and str(answer["error"]).startswith("since 'soon' is neither")
    # A key the ledger does not know, and one outside the prefix shown, are skipped with why; nothing is retried.
    status, answer = post({"state": "failed", "prefix": "incoming/urgent/", "keys": ["incoming/urgent/never.txt", "incoming/else.txt"]})
    assert status == 200 and answer["retried"] == []
    skipped = answer["skipped"]
    assert isinstance(skipped, dict) and set(skipped) == {"incoming/urgent/never.txt", "incoming/else.txt"}
    assert skipped["incoming/urgent/never.txt"].startswith("no file 'incoming/urgent/never.txt' in the ledger of s3://dropq-local/")
    assert skipped["incoming/else.txt"] == "incoming/else.txt is not below incoming/urgent/"


def test_beyond_loopback_the_search_and_retry_many_need_the_token(exposed: FlaskClient) -> None:
    headers = {"Host": "10.0.0.5:8321"}
    assert exposed.get("/api/files", headers=headers).status_code == 403
    assert exposed.get("/api/file?key=incoming/x.txt", headers=headers).status_code == 403
    assert exposed.post("/api/retry-many", headers=headers, json={"state": "failed", "keys": ["incoming/x.txt"]}).status_code == 403
    assert exposed.get("/api/files?since=1h", headers={**headers, TOKEN_HEADER: "s3cret"}).status_code == 200


def test_retry_many_without_keys_retries_every_failure_the_search_selects(moto_settings: Settings, loopback: FlaskClient) -> None:
    # Given two failed files below a prefix of their own, and one elsewhere
    ledger, root = ledger_for(moto_settings), f"incoming/many-{uuid.uuid4().hex[:8]}/"
    refs = [ObjectRef(bucket=moto_settings.bucket, key=key, etag=uuid.uuid4().hex, size=10) for key in (f"{root}a.txt", f"{root}b.txt")]
    other = ObjectRef(bucket=moto_settings.bucket, key=f"incoming/other-{uuid.uuid4().hex[:8]}.txt", etag="e", size=10)
    for ref in (*refs, other):
        claim = ledger.claim(ref, "metadata", "t1", worker="w", lease_seconds=60)
        assert claim.owner and ledger.mark_failed(ref, claim.owner, "broken", "metadata")

    # When every failure below the prefix is retried (what a script sends: no keys)
    response = loopback.post("/api/retry-many", headers=LOOPBACK, json={"state": "failed", "since": "1h", "prefix": root})

    # Then exactly those two are queued again; the other stays failed
    assert response.status_code == 200 and response.get_json() == {"retried": [r.key for r in refs], "skipped": {}}
    assert [ledger.get(r.bucket, r.key)["state"] for r in refs] == ["queued", "queued"]
    assert ledger.get(other.bucket, other.key)["state"] == "failed"
    drain(moto_settings, "default")
