"""Kubernetes semantics without I/O: quantities, what a pod requests and holds, template escaping.

The configuration may use these (a memory size is a Kubernetes quantity); the API client and the
informers live apart in :mod:`aiinfn_hub.kube`, which the configuration never imports.
"""
