"""dropq's core, the bottom layer: topology, settings, errors, objects, the ledger, the Celery message protocol and its
signing, enqueueing (what the producer sends, and retries and backfills), observability.

It imports nothing else of the project (pyproject.toml's import contracts), and only the standard library, boto3 and
Powertools at import time, because it ships whole in the producer's Lambda asset.
"""
