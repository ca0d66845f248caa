"""The ``aiinfn-hub`` command: check a platform configuration, render its Kueue objects, make
the configuration reference (``docs/configuration.md``).

Production only: nothing here imports :mod:`aiinfn_hub.dev` (the local platform and the
Kubernetes API emulator are the ``aiinfn-dev`` command of :mod:`aiinfn_hub.dev.cli`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# development commands that moved to ``aiinfn-dev`` (aiinfn_hub/dev/cli.py): named here only to
# say so, without importing anything of aiinfn_hub.dev
MOVED_TO_AIINFN_DEV = ("dev", "emulator")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiinfn-hub",
        description="Tools of the aiinfn-hub JupyterHub extension bundle.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser(
        "check-config",
        help="validate a platform configuration file",
        description="Validate a platform configuration (YAML). Prints the errors, each with "
        "the path of the bad key, and exits 1; or prints a short summary and exits 0.",
    )
    check.add_argument("file", help="the platform configuration YAML file")

    kueue = sub.add_parser(
        "render-kueue",
        help="print the platform's Kueue objects (YAML) from a platform configuration",
        description="Generate the Kueue objects of Bunshin jobs (ResourceFlavors per "
        "accelerator model and for virtual nodes, the pool and per-project ClusterQueues in "
        "one cohort, LocalQueues, priority classes) from a platform configuration, check them "
        "as Kueue would, and print them as one YAML stream for kubectl apply -f -.",
    )
    kueue.add_argument("file", help="the platform configuration YAML file")

    docs = sub.add_parser(
        "docs-config",
        help="print the configuration reference (Markdown); write or check docs/configuration.md",
        description="Make the configuration reference from the code: every key of the platform "
        "configuration (type, default, description) and every setting of our JupyterHub "
        "classes (type, default, help). Without an option, print it. --check exits 1 when the "
        "file differs from what the code gives (the file is out of date).",
    )
    mode = docs.add_mutually_exclusive_group()
    mode.add_argument("--write", metavar="FILE", help="write the reference to FILE")
    mode.add_argument("--check", metavar="FILE", help="exit 1 unless FILE is up to date")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aiinfn-hub`` console script."""
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] in MOVED_TO_AIINFN_DEV:
        command = argv[0]
        print(
            f"aiinfn-hub {command}: moved to `aiinfn-dev {command}` (development only, "
            "installed with the dev extra: pip install 'aiinfn-hub[dev]')",
            file=sys.stderr,
        )
        return 2
    args = build_parser().parse_args(argv)
    if args.command == "check-config":
        from .config_check import check_config_command

        return check_config_command(args.file)
    if args.command == "render-kueue":
        return _render_kueue(Path(args.file))
    if args.command == "docs-config":
        return _docs_config(args.write, args.check)
    raise AssertionError(args.command)  # argparse rejects unknown commands


def _render_kueue(path: Path) -> int:
    import yaml

    from .bunshin.kueue import check_kueue, kueue_objects
    from .config import PlatformConfigError, load_platform_config

    try:
        config = load_platform_config(path)
    except PlatformConfigError as exc:
        print(f"aiinfn-hub render-kueue: {exc}", file=sys.stderr)
        return 1
    objects = kueue_objects(config)
    problems = check_kueue(objects)
    if problems:
        print("aiinfn-hub render-kueue: the objects would be refused:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False))
    return 0


def _docs_config(write: str | None, check: str | None) -> int:
    from .config_docs import configuration_reference, write_command

    if write is not None:
        Path(write).write_text(configuration_reference(), encoding="utf-8")
        return 0
    if check is None:
        sys.stdout.write(configuration_reference())
        return 0
    path = Path(check)
    try:
        current = path.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"aiinfn-hub docs-config: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 1
    if current != configuration_reference():
        print(
            f"aiinfn-hub docs-config: {path} is out of date with the code; make it again "
            f"with: {write_command(str(path))}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
