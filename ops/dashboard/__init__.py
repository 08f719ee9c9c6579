"""`dropq dashboard`: a live web page over a deployment's queues, pools and files, with its actions (Flower cannot see SQS)."""
