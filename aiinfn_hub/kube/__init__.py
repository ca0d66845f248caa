"""Kubernetes I/O: the JSON REST client and the informers (no platform policy)."""
