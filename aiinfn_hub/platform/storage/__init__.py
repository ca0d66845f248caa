"""Storage at spawn: pure builders of volumes, mounts and helper containers (``plan``), with
``nfs`` (homes, projects, shared areas and their creation), ``ephemeral`` (scratch, CVMFS),
``buckets`` (rclone sidecar or CSI) and ``naming`` (safe folder and volume names)."""

from .plan import StoragePlan, spawner_settings, storage_plan

__all__ = ["StoragePlan", "spawner_settings", "storage_plan"]
