"""kombu's SQS transport with the fixes dropq's reliability rests on, one job per module (`broker_transport` in tasks/config.py).

- `transport.py` — the QoS, Channel and Transport kombu and Celery load; each override there is a thin method that hands
  its job to one of the collaborators below.
- `acks.py` — acknowledgements deleted ten to a DeleteMessageBatch, on the event loop or, when closing, at once.
- `polls.py` — the channel's long polls: which are open and until when, queues parked while the worker is full, receives
  that failed or were never answered, and waiting the open polls out when the worker stops.
- `delays.py` — countdowns and ETAs waiting in SQS: per-message delays, and hops for those longer than SQS allows.
- `visibility.py` — the messages a worker holds, changing their visibility in batches, and the keeper (tasks/keeper.py).
- `release.py` — giving messages back: visible again at once, instead of kombu's copy.

The private kombu names these lean on are listed, and checked at worker start, in tasks/contract.py.
"""
