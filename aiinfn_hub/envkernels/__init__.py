"""Managed software environments as Jupyter kernels, for the single-user image.

Every conda environment, Python venv and Apptainer image (``*.sif``) under the managed
environments area (``/envs``) and under the user's own ``~/envs`` is offered as a kernel by
:class:`~aiinfn_hub.envkernels.spec_manager.EnvironmentKernelSpecManager`; ``aiinfn-envs clone``
copies a managed environment into the home. This package runs inside the single-user server:
it imports nothing else of ``aiinfn_hub`` and needs only ``jupyter_client`` and ``traitlets``.
"""
