"""The GPU-aware spawner: options policy and validation, pod settings, form, API handler."""
