"""The operator's tools, the top layer: the `dropq` command, the dashboard, status, dead letters, finding files."""
