"""A Bunshin service process that a test kills half-way through one use case.

``python doomed_service.py KUBECONFIG POD_UID submit`` submits a job as dana, ``... cancel ID``
cancels one; the test SIGKILLs the process at the step it means (the emulator's latency holds
the process at that step), so nothing of the service's own clean-up runs, as when a node dies.
"""

from __future__ import annotations

import asyncio
import sys

from emulated_server import SERVERS, MemoryHub, platform
from kubernetes_asyncio import client, config

from aiinfn_hub.bunshin.service import JobService
from aiinfn_hub.kube.rest import KubeRest
from aiinfn_hub.services.caller import Caller

DANA = Caller("dana", frozenset({"cms"}), frozenset({"custom:bunshin:submit"}))


async def main(kubeconfig: str, pod_uid: str, action: str, *args: str) -> None:
    configuration = client.Configuration()
    await config.load_kube_config(kubeconfig, client_configuration=configuration)
    async with client.ApiClient(configuration) as api:
        service = JobService(
            platform(), MemoryHub(pod_uid), KubeRest(api), SERVERS, {SERVERS: "servers"}
        )
        print("started", flush=True)
        if action == "submit":
            await service.submit(
                DANA,
                {"command": ["python", "train.py"], "sandbox": {"train.py": "print(1)"}},
            )
        else:
            await service.cancel(DANA, args[0])
        print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
