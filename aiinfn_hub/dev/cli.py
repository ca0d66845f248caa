"""The ``aiinfn-dev`` command (development only): the local platform and the Kubernetes API
emulator. The production command, ``aiinfn-hub``, never imports this package."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

DEFAULT_EMULATOR_PORT = 8001


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiinfn-dev",
        description="Development tools of aiinfn-hub: the local platform and the Kubernetes API "
        "emulator (they need the dev extra: pip install 'aiinfn-hub[dev]').",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = sub.add_parser(
        "dev",
        help="start the local platform (hub, identity provider, emulated cluster, S3)",
        description="Start the whole platform on this machine: the Kubernetes API emulator with "
        "the paper's four servers, the local OpenID provider with demo users, a local S3 "
        "server, and JupyterHub with jupyterhub_config.py. Prints the URL and demo accounts; "
        "Ctrl-C stops everything.",
    )
    dev.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".aiinfn-dev"),
        help="folder of all state, reused by the next run (default .aiinfn-dev)",
    )
    dev.add_argument("--port", type=int, default=8000, help="the hub's port (default 8000)")
    dev.add_argument("--reset", action="store_true", help="wipe the state folder first")
    dev.add_argument(
        "--pod-network",
        choices=("auto", "netns", "loopback"),
        default="auto",
        help="the pods' network (default auto): netns gives each pod a network namespace of "
        "its own on a bridge private to the platform, whose gateway 100.N.0.1 is where the "
        "hub API, the Bunshin service, the local S3 and Redis listen for them (Linux, root, "
        "the ip command); loopback gives each pod a 127.N.x.y address on this machine's "
        "network, everything on 127.0.0.1; auto is netns where possible, else loopback, and "
        "the banner says why",
    )

    emu = sub.add_parser(
        "emulator",
        help="serve the Kubernetes API emulator",
        description="Serve an emulated Kubernetes cluster (REST API, scheduler, kubelet, Job "
        "controller) on 127.0.0.1 over HTTPS, and write a kubeconfig pointing at it, with the "
        "bearer token every request must carry and the CA to trust (both new at each start). "
        "Stop with Ctrl-C.",
    )
    emu.add_argument(
        "--port",
        type=int,
        default=DEFAULT_EMULATOR_PORT,
        help=f"TCP port to listen on (default {DEFAULT_EMULATOR_PORT}; 0 picks a free one)",
    )
    emu.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1); only a loopback address (127.0.0.0/8, "
        "::1, localhost) unless --insecure-listen",
    )
    emu.add_argument(
        "--insecure-listen",
        action="store_true",
        help="allow a --host other machines can reach (e.g. 0.0.0.0): anyone holding the "
        "kubeconfig's token can then create pods, which run commands on this machine with "
        "--run-processes; the certificate names localhost, 127.0.0.1, ::1, --host and, for "
        "0.0.0.0, this machine's host name",
    )
    emu.add_argument(
        "--cluster",
        type=Path,
        help="cluster file (YAML) describing the nodes, e.g. examples/cluster.yaml",
    )
    emu.add_argument(
        "--crds",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="a CustomResourceDefinition file, or a folder of them, installed at start (may "
        "be repeated); a CRD for one of Kueue's kinds replaces the emulator's built-in, "
        "schema-less kind, so its objects are validated and defaulted as on a real cluster "
        "with that CRD (e.g. --crds tests/data/kueue-crds)",
    )
    emu.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".state/emulator"),
        help="folder for the kubeconfig, pod folders and logs (default .state/emulator)",
    )
    emu.add_argument(
        "--kubeconfig",
        type=Path,
        help="where to write the kubeconfig (default STATE_DIR/kubeconfig)",
    )
    emu.add_argument(
        "--run-processes",
        action="store_true",
        help="run every pod's container command as a local process (default: simulate, and "
        "pods annotated emulator.aiinfn.dev/outcome=process are simulated too)",
    )
    emu.add_argument(
        "--pod-network",
        choices=("auto", "netns", "loopback"),
        default="auto",
        help="the pods' network (default auto): netns gives each process-mode pod a network "
        "namespace of its own, its IP in 100.N.0.0/16 on a bridge aiinfn-N private to this "
        "emulator (no forwarding, no NAT), so every pod may bind any port and localhost is "
        "its own, but it cannot reach this machine's 127.0.0.1 (its host is 100.N.0.1); it "
        "reaches beyond this machine through a slirp4netns of its own, when installed; it "
        "needs Linux, root and the ip command; loopback gives each pod a 127.N.x.y IP on "
        "this machine's network (a server must bind its pod IP; ports bound on 0.0.0.0 or "
        "127.0.0.1 are shared by all pods); auto is netns where possible and pods run as "
        "processes, loopback otherwise, with a log line saying why",
    )
    emu.add_argument(
        "--no-validate",
        action="store_true",
        help="skip OpenAPI schema validation of written objects (faster, less faithful)",
    )
    emu.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aiinfn-dev`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "emulator":
        return _run_emulator(args)
    if args.command == "dev":
        from .platform import run_dev

        return run_dev(args.state_dir, args.port, args.reset, args.pod_network)
    raise AssertionError(args.command)  # argparse rejects unknown commands


def _run_emulator(args: argparse.Namespace) -> int:
    from .emulator.access import is_loopback_host
    from .emulator.cluster import ClusterSpec, load_cluster_file, load_crds
    from .emulator.controllers.pod_network import NetworkUnavailable
    from .emulator.runtime import Emulator

    if not args.insecure_listen and not is_loopback_host(args.host):
        print(
            f"aiinfn-dev emulator: refusing to listen on {args.host!r}, not a loopback address "
            "(the API runs pods; pass --insecure-listen to expose it anyway)",
            file=sys.stderr,
        )
        return 2

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        cluster = load_cluster_file(args.cluster) if args.cluster else ClusterSpec()
        for path in args.crds:
            cluster.crds.extend(load_crds(path))
    except (OSError, ValueError) as exc:
        print(f"aiinfn-dev emulator: {exc}", file=sys.stderr)
        return 1
    args.state_dir.mkdir(parents=True, exist_ok=True)
    emulator = Emulator(
        cluster,
        host=args.host,
        port=args.port,
        state_dir=args.state_dir,
        run_processes=args.run_processes,
        insecure_listen=args.insecure_listen,
        validate=not args.no_validate,
        pod_network=args.pod_network,
    )

    def ready() -> None:
        path = emulator.write_kubeconfig(args.kubeconfig).resolve()
        print(f"Kubernetes API emulator serving on {emulator.url}", flush=True)
        print(f"  {len(cluster.nodes)} nodes from {args.cluster or '(no cluster file)'}")
        print("Use it with kubectl (Ctrl-C stops the emulator):")
        print(f"  export KUBECONFIG={path}")
        print("  kubectl get nodes,pods -A", flush=True)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, emulator.shutdown)
        await emulator.serve(ready=ready)

    try:
        asyncio.run(run())
    except NetworkUnavailable as exc:
        print(f"aiinfn-dev emulator: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"aiinfn-dev emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
    print("Kubernetes API emulator stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
