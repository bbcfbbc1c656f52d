"""Maintainers' tools run from the project folder (``python -m tools.<name>``)."""
