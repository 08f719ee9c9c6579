"""The producer Lambda: S3 event notifications in, Celery task messages on SQS out (boto3 only)."""
