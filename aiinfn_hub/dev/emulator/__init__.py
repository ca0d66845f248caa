"""A Kubernetes API emulator: the real REST protocol over HTTP, with a scheduler, a kubelet,
a Job controller and a garbage collector, for tests and the local platform (no cluster here)."""
