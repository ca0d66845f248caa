"""Accelerator availability: ``availability`` counts free and total units per model and server
from node and pod objects (pure); ``live`` keeps that answer from the hub's informer caches."""
