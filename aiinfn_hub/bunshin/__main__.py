"""``python -m aiinfn_hub.bunshin --config PATH``: run the service (as a JupyterHub service)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from ..config import PlatformConfigError
from ..services.web import bind_address, service_prefix
from .app import make_app, make_janitor, make_recorder, make_service, serve_http
from .namespaces import NamespaceError
from .scopes import SERVICE


async def serve(config_path: Path) -> None:
    """Serve until SIGTERM or SIGINT; then stop the recorder of preemptions and the janitor of
    interrupted submissions cleanly."""
    service = await make_service(config_path)
    prefix = service_prefix(name=SERVICE)
    host, port = bind_address()
    recorder = make_recorder(service)
    recorder.start()
    janitor = make_janitor(service)
    janitor.start()
    server = serve_http(make_app(service, prefix), service, host, port)
    log = logging.getLogger("bunshin")
    log.info("Bunshin serving on %s:%s%s", host, port, prefix)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
        log.info("Bunshin stopping")
    finally:
        server.stop()
        await janitor.stop()
        await recorder.stop()
        await service.cluster.kube.api_client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bunshin-service", description=__doc__)
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ.get("AIINFN_PLATFORM_CONFIG", "/etc/aiinfn/platform.yaml")),
        help="platform configuration YAML (default: $AIINFN_PLATFORM_CONFIG)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="[%(levelname).1s %(asctime)s bunshin] %(message)s"
    )
    for name in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN"):
        if not os.environ.get(name):
            print(f"bunshin: {name} is not set: run me as a JupyterHub service", file=sys.stderr)
            return 2
    try:
        asyncio.run(serve(args.config))
    except (PlatformConfigError, NamespaceError) as exc:
        print(f"bunshin: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
