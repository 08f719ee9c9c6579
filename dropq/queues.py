"""How many messages an SQS queue holds, as SQS approximates them (GetQueueAttributes)."""

from __future__ import annotations

from typing import Any

QUEUE_COUNTS = {
    "visible": "ApproximateNumberOfMessages",
    "in_flight": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",
}


def queue_counts(sqs: Any, url: str) -> dict[str, int]:
    """Messages visible, in flight and delayed in one queue, as SQS approximates them."""
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(QUEUE_COUNTS.values()))["Attributes"]
    return {name: int(attributes.get(attribute, 0)) for name, attribute in QUEUE_COUNTS.items()}
