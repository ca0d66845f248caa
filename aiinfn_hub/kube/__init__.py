"""Thin Kubernetes layer: quantities, pod resource arithmetic, informers over kubernetes_asyncio."""
