"""Local development platform: the Kubernetes API emulator and, later, the one-command dev stack."""
