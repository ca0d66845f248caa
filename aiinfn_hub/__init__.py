"""aiinfn-hub: JupyterHub extensions for a Kubernetes GPU platform for ML in science."""

__version__ = "0.1.0"
