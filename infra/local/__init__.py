"""The local cloud: a moto server, the topology provisioned in it, a Lambda runtime and Celery workers."""
