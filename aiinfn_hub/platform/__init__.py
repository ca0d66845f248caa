"""The platform core: what every feature shares, with no I/O.

- :mod:`.vocabulary`: every label, annotation and key the platform writes or reads;
- :mod:`.entitlements`: who may use which images, accelerators, CPU and memory, and how much;
- :mod:`.placement`: where an accelerator model, a reserved node or a virtual node puts a pod.

Features (spawner, auth, storage, Bunshin, and later accounting and culling) import this core
and the configuration, never each other.
"""
