"""Bunshin: clones of a user's running notebook server as Kubernetes Jobs, queued by Kueue."""
