"""dropq's shared core: settings, ledger, Celery message protocol and the CLI.

Modules imported by the producer (settings, errors, ledger, protocol, objects) use only the
standard library and boto3, because they ship in the Lambda bundle.
"""
