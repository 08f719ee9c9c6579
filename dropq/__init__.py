"""dropq's shared core: settings, ledger, Celery message protocol, observability, the CLI and the dashboard.

Modules imported by the producer (settings, errors, ledger, protocol, objects, observe) use only the
standard library, boto3 and Powertools, because they ship in the Lambda bundle.
"""
