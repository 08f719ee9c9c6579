"""The dashboard's web application against moto: its JSON, and who may act (loopback names only, the token elsewhere)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from dropq.dashboard.app import TOKEN_HEADER, create_app
from dropq.dashboard.monitor import Monitor
from dropq.dashboard.server import Dashboard
from dropq.deployment import local_deployment
from dropq.settings import Settings
from dropq.status import queue_counts
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


def test_bound_beyond_loopback_the_dashboard_makes_up_a_token_and_puts_it_in_its_url(moto_settings: Settings) -> None:
    exposed = Dashboard(local_deployment(moto_settings), host="0.0.0.0", port=8321)
    assert exposed.token and exposed.url == f"http://0.0.0.0:8321/#token={exposed.token}"
    assert Dashboard(local_deployment(moto_settings), host="127.0.0.1", port=8321).url == "http://127.0.0.1:8321/"
