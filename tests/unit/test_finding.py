"""Finding files (ops/finding.py): --since, states, page tokens, what a version shows, and bad input's one-line answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from dropq.errors import ActionError
from dropq.ledger import FAILED_INDEX, RECENT, file_pk
from ops.cli import main
from ops.finding import (
    check_limit,
    check_state,
    decode_page,
    encode_page,
    key_of,
    last_attempt,
    parse_since,
    render_history,
    render_page,
    summary,
)

NOW = datetime(2026, 12, 1, 20, 15, 3, 120000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "back"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("2d", timedelta(days=2)),
        ("45", timedelta(seconds=45)),
    ],
)
def test_since_takes_a_duration_back_from_now(text: str, back: timedelta) -> None:
    assert parse_since(text, now=NOW) == NOW - back


def test_since_takes_an_iso_time_in_utc_unless_it_names_its_zone() -> None:
    assert parse_since("2026-12-01T20:00Z", now=NOW) == datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
    assert parse_since("2026-12-01T20:00", now=NOW) == datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
    assert parse_since("2026-12-01T21:00+02:00", now=NOW) == datetime(2026, 12, 1, 19, 0, tzinfo=UTC)
    assert parse_since("2026-11-30", now=NOW) == datetime(2026, 11, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "1 week", "-1h", "1y", ""])
def test_a_since_that_does_not_parse_is_named(text: str) -> None:
    with pytest.raises(ActionError, match="is neither a duration") as raised:
        parse_since(text, now=NOW)
    assert repr(text) in str(raised.value)


def test_a_since_in_the_future_is_refused() -> None:
    with pytest.raises(ActionError, match=r"--since '2027-01-01' is in the future"):
        parse_since("2027-01-01", now=NOW)


def test_states_and_page_sizes_are_checked() -> None:
    assert check_state("failed") == "failed" and check_state(None) is None
    with pytest.raises(ActionError, match="--state 'fialed' is not one of the ledger's states: queued, running, succeeded, failed"):
        check_state("fialed")
    assert check_limit(50) == 50
    with pytest.raises(ActionError, match=r"--limit 0 is outside 1..1000"):
        check_limit(0)


def test_a_page_token_round_trips_and_a_foreign_one_is_named() -> None:
    row = ("2026-12-01T20:15:03.120Z", file_pk("dropq-local", "incoming/a b+c.csv"), "etag-1")
    token = encode_page(FAILED_INDEX, row)
    assert token.isascii() and "=" not in token and "/" not in token
    assert decode_page(token, "failed") == row
    assert decode_page(encode_page(RECENT, row), "succeeded") == row
    assert decode_page(encode_page(RECENT, row), None) == row
    with pytest.raises(ActionError, match="continues a listing of failed files"):
        decode_page(token, "queued")
    with pytest.raises(ActionError, match="continues a listing by when files entered the ledger"):
        decode_page(encode_page(RECENT, row), "failed")
    for bad in ("nonsense", "e30", token[:-3], ""):
        with pytest.raises(ActionError, match="is not a page token that `dropq files` printed"):
            decode_page(bad, "failed")


def test_the_key_is_read_from_the_partition_key() -> None:
    assert key_of(file_pk("dropq-local", "incoming/deep/er/x.jpg")) == "incoming/deep/er/x.jpg"


def _entry(**fields: object) -> dict[str, object]:
    return {"pk": file_pk("b", "incoming/x.csv"), "sk": "e1", "bucket": "b", "key": "incoming/x.csv", "size": 10, **fields}


def test_the_last_attempt_has_its_end_only_once_it_ended() -> None:
    running = _entry(state="running", started_at="2026-12-01T20:10:00.000Z", finished_at="2026-12-01T20:00:00.000Z", worker="w1")
    assert last_attempt(running) == {"started_at": "2026-12-01T20:10:00.000Z", "finished_at": None, "worker": "w1", "duration_ms": None}
    failed = _entry(state="failed", started_at="2026-12-01T20:10:00.000Z", finished_at="2026-12-01T20:10:01.500Z", worker="w1")
    assert last_attempt(failed)["duration_ms"] == 1500  # type: ignore[index]
    done = _entry(state="succeeded", started_at="2026-12-01T20:10:00.000Z", finished_at="2026-12-01T20:10:02.000Z", duration_ms=1234)
    assert last_attempt(done)["duration_ms"] == 1234, "the pipeline's own measure"  # type: ignore[index]
    assert last_attempt(_entry(state="queued")) is None


def test_a_history_shows_each_version_its_pipeline_version_or_a_dash_and_the_webhook() -> None:
    newest = {
        **summary(
            _entry(
                state="failed",
                pipeline="tables",
                reason="not a CSV",
                attempts=2,
                started_at="2026-12-01T20:10:00.000Z",
                finished_at="2026-12-01T20:10:01.000Z",
                worker="w1",
                webhook={"name": "notify", "state": "failed", "status": 500, "attempts": 5, "reason": "gave up"},
            )
        ),
        "superseded": False,
    }
    older = {
        **summary(_entry(sk="e0", state="succeeded", pipeline="tables", pipeline_version=3, outputs=["processed/tables/x/profile.json"])),
        "superseded": True,
    }
    text = render_history("b", "incoming/x.csv", [newest, older])
    assert text.splitlines()[0] == "s3://b/incoming/x.csv: 2 versions in the ledger"
    assert "version e1 (newest, 10 bytes): failed" in text and "version e0 (superseded, 10 bytes): succeeded" in text
    assert "pipeline  tables (version -) on queue -" in text and "pipeline  tables (version 3)" in text
    assert "the last: started 2026-12-01T20:10:00.000Z, ended 2026-12-01T20:10:01.000Z, on w1, took 1 s" in text
    assert "reason    not a CSV" in text and "output    processed/tables/x/profile.json" in text
    assert "webhook   notify: failed (500) after 5 attempt(s): gave up" in text


def test_a_page_shows_failures_by_when_they_failed_with_their_reason() -> None:
    failed = summary(_entry(state="failed", pipeline="tables", failed_at="2026-12-01T20:10:01.000Z", reason="not a CSV", attempts=1))
    text = render_page([failed], "failed")
    assert text.splitlines()[0].split() == ["STATE", "PIPELINE", "FAILED", "AT", "ATTEMPTS", "KEY"]
    assert text.splitlines()[1].split() == ["failed", "tables", "2026-12-01T20:10:01.000Z", "1", "incoming/x.csv"]
    assert text.splitlines()[2].strip() == "reason: not a CSV"


def _one_line_error(*args: str) -> str:
    # Every check here answers before any AWS request: no endpoint is running.
    result = CliRunner().invoke(main, list(args), env={"DROPQ_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("files", "--since", "yesterday"), "Error: --since 'yesterday' is neither a duration (90s, 30m, 1h, 2d) nor an ISO time"),
        (("files", "--state", "done"), "Error: --state 'done' is not one of the ledger's states: queued, running, succeeded, failed"),
        (("files", "--limit", "0"), "Error: --limit 0 is outside 1..1000"),
        (("files", "--pipeline", "words"), "Error: --pipeline 'words' is no pipeline of this deployment's routes; known: images, metadata"),
        (("files", "--state", "failed", "--page", "xyz"), "Error: --page 'xyz' is not a page token that `dropq files` printed"),
        (("retry",), "Error: give KEY (e.g. incoming/photo.jpg), or --state failed [--since 1h] to retry many"),
        (("retry", "incoming/a.csv", "--state", "failed"), "Error: give KEY (incoming/a.csv) or --state failed, not both"),
        (("retry", "incoming/a.csv", "--since", "1h"), "Error: --since select files with --state failed; KEY (incoming/a.csv) names one"),
        (("retry", "--state", "succeeded"), "Error: --state 'succeeded': only failed files are retried; give --state failed"),
        (("retry", "--state", "faild"), "Error: --state 'faild' is not one of the ledger's states"),
        (("retry", "--state", "failed", "--since", "2099-01-01"), "Error: --since '2099-01-01' is in the future"),
    ],
)
def test_bad_input_gets_a_one_line_answer_naming_the_value(args: tuple[str, ...], expected: str) -> None:
    assert _one_line_error(*args).startswith(expected)


class _HeadOnly:
    """S3's HeadObject answer for one object (moto stamps LastModified now: an old upload cannot be made there)."""

    def __init__(self, uploaded: datetime | None = None, error: str | None = None) -> None:
        self.uploaded, self.error = uploaded, error

    def head_object(self, Bucket: str, Key: str) -> dict[str, object]:
        from botocore.exceptions import ClientError

        if self.error:
            raise ClientError(
                {"Error": {"Code": self.error, "Message": "Forbidden"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "HeadObject"
            )
        return {"ETag": '"e1"', "ContentLength": 12, "LastModified": self.uploaded}


def test_a_version_not_in_the_ledger_is_waiting_within_its_queues_retention_and_unrecorded_past_it() -> None:
    from dropq.topology import TOPOLOGY
    from ops.finding import UNRECORDED, WAITING, waiting_version

    key, kept = "incoming/notes.txt", timedelta(seconds=TOPOLOGY.queue("default").retention_seconds)
    recent = waiting_version(_HeadOnly(datetime.now(UTC) - timedelta(minutes=5)), TOPOLOGY, "b", key, set())
    old = waiting_version(_HeadOnly(datetime.now(UTC) - kept - timedelta(hours=1)), TOPOLOGY, "b", key, set())
    assert recent is not None and (recent["state"], recent["queue"], recent["pipeline"]) == (WAITING, "default", "metadata")
    assert old is not None and old["state"] == UNRECORDED
    text = render_history("b", key, [{**old, "superseded": False}])
    assert "unrecorded, not in the ledger" in text and f"`dropq backfill s3://b/{key}` sends it" in text
    # The ledger has that version; a key outside the inbox; an object the caller may not read: nothing from S3
    assert waiting_version(_HeadOnly(datetime.now(UTC)), TOPOLOGY, "b", key, {"e1"}) is None
    assert waiting_version(_HeadOnly(datetime.now(UTC)), TOPOLOGY, "b", "processed/x.json", set()) is None
    assert waiting_version(_HeadOnly(error="403"), TOPOLOGY, "b", key, set()) is None
