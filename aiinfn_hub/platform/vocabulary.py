"""Every label, annotation and key the platform writes on Kubernetes objects or reads from them.

Named once here so that the spawner that writes ``aiinfn.infn.it/accelerator`` on a notebook
pod, Bunshin that reads it to clone the server, the inventory and (later) accounting agree by
construction. Labels hold values that are valid label values (model names, slugs, counts);
anything a user chose freely (usernames, commands, display names) goes in annotations.
"""

from __future__ import annotations

from typing import Final

# -- keys owned by the platform ------------------------------------------------------------------
PREFIX: Final = "aiinfn.infn.it"

# labels of notebook pods and Bunshin jobs (accounting and dashboards group by them)
ACCELERATOR: Final = f"{PREFIX}/accelerator"  # catalogue model name, or NO_ACCELERATOR
ACCELERATOR_COUNT: Final = f"{PREFIX}/accelerator-count"  # units, as a decimal string
NO_ACCELERATOR: Final = "none"
IMAGE: Final = f"{PREFIX}/image"  # catalogue image name (notebook pods)
PROJECT: Final = f"{PREFIX}/project"  # project charged (jobs, JuiceFS Secrets)
OFFLOAD: Final = f"{PREFIX}/offload"  # "true" when a job may go to a virtual node
BUNSHIN_USER: Final = f"{PREFIX}/bunshin-user"  # user slug of a job's owner (selectable)
CANCELLED: Final = f"{PREFIX}/cancelled"  # set on a job its owner cancelled

# annotations
USER: Final = f"{PREFIX}/user"  # the hub username, exactly
PROJECTS: Final = f"{PREFIX}/projects"  # comma-separated projects of a notebook's user
SERVER: Final = f"{PREFIX}/server"  # pinned node of a notebook; source server of a job
SOURCE_POD: Final = f"{PREFIX}/source-pod"
SOURCE_POD_UID: Final = f"{PREFIX}/source-pod-uid"
COMMAND: Final = f"{PREFIX}/command"  # JSON list
DISPLAY_NAME: Final = f"{PREFIX}/display-name"
TOKEN_EXPIRES_AT: Final = f"{PREFIX}/token-expires-at"  # on the token Secret, for admins
# on a Bunshin Job: JSON record of the notebooks' preemptions of its pods (the most recent ones
# and the totals), written by the service as it sees them, since the pods themselves go away
PREEMPTIONS: Final = f"{PREFIX}/preemptions"

# -- recommended Kubernetes labels -------------------------------------------------------------
MANAGED_BY: Final = "app.kubernetes.io/managed-by"
COMPONENT: Final = "app.kubernetes.io/component"
MANAGER_HUB: Final = "aiinfn-hub"  # objects the hub (and its tooling) manages
MANAGER_BUNSHIN: Final = "bunshin"  # jobs and what belongs to them
COMPONENT_TOKEN: Final = "storage-token"
COMPONENT_SCRATCH: Final = "scratch"
COMPONENT_JUICEFS_CREDENTIALS: Final = "juicefs-credentials"

# -- the per-user token Secret ------------------------------------------------------------------
TOKEN_SECRET_PREFIX: Final = "aiinfn-token-"
TOKEN_KEY: Final = "token"  # the Secret's key: the file name the storage sidecars read

# -- keys of others that the platform reads or writes -------------------------------------------
HUB_USERNAME: Final = "hub.jupyter.org/username"  # kubespawner's annotation (and our label)
HOSTNAME: Final = "kubernetes.io/hostname"
JOB_COMPLETION_INDEX: Final = "batch.kubernetes.io/job-completion-index"
# the Job controller's labels naming a pod's Job (the short one is the older, still set)
JOB_NAME: Final = "batch.kubernetes.io/job-name"
JOB_NAME_SHORT: Final = "job-name"
KUEUE_QUEUE: Final = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_CLASS: Final = "kueue.x-k8s.io/priority-class"
KUEUE_JOB_UID: Final = "kueue.x-k8s.io/job-uid"
# the pod condition saying a pod is being stopped by the cluster (not by its own failure), and
# the reasons Kubernetes gives in it: only the scheduler's preemption is a notebook taking its GPU
DISRUPTION_TARGET: Final = "DisruptionTarget"
PREEMPTION_BY_SCHEDULER: Final = "PreemptionByScheduler"
DELETION_BY_TAINT_MANAGER: Final = "DeletionByTaintManager"
EVICTION_BY_EVICTION_API: Final = "EvictionByEvictionAPI"
DELETION_BY_POD_GC: Final = "DeletionByPodGC"
TERMINATION_BY_KUBELET: Final = "TerminationByKubelet"
NOTEBOOK_CONTAINER: Final = "notebook"  # kubespawner's container name
# interLink's virtual kubelet labels its nodes virtual-node.interlink/type=virtual-kubelet
# (releases before 0.5: type=virtual-kubelet)
INTERLINK_TYPE_LABEL: Final = ("virtual-node.interlink/type", "virtual-kubelet")
VIRTUAL_NODE_LABEL: Final = ("type", "virtual-kubelet")
