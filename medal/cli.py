"""The `medal` command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from medal.preflight import (
    ConfigurationError,
    check_dependencies,
    embedded_access_notice,
    load_settings,
    require_distributed,
    require_safe_configuration,
)
from medal.settings import SERVICE_NAMES


def _up(args: argparse.Namespace) -> int:
    import uvicorn

    from medal.app import build_app

    settings = load_settings()
    host = args.host or settings.host
    port = args.port or settings.port
    notice = embedded_access_notice(settings, host)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    print(f"medal: embedded platform on http://{host}:{port} (state in {settings.data_dir.resolve()})")
    print(f"medal: API docs per service at http://{host}:{port}/<service>/docs: {', '.join(SERVICE_NAMES)}")
    if notice:
        print(notice)
    app = build_app(settings, SERVICE_NAMES, consume=True, migrate=True)
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower())
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from medal.app import build_app

    settings = load_settings()
    require_distributed(settings, "medal serve")
    require_safe_configuration(settings, "medal serve", args.service)
    check_dependencies(settings)
    app = build_app(settings, [args.service], consume=False)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    from medal.worker import run_worker
    from proto.topology import SERVICE_QUEUE

    if args.service not in SERVICE_QUEUE:
        raise ConfigurationError(
            f"{args.service} consumes no messages, so it has no queue worker: run `medal serve {args.service}`"
        )
    settings = load_settings()
    require_distributed(settings, "medal worker")
    require_safe_configuration(settings, "medal worker", args.service)
    check_dependencies(settings)
    run_worker(settings, args.service)
    return 0


def _migrate(_args: argparse.Namespace) -> int:
    from medal.db.migrate import upgrade

    settings = load_settings()
    try:
        upgrade(settings.effective_database_url)
    except Exception as exc:
        raise ConfigurationError(f"migration failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    print("medal: database schema is at the latest revision")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from medal.demo import run_demo

    return run_demo(args.data)


def build_parser(*, with_simulate: bool = True) -> argparse.ArgumentParser:
    """``with_simulate=False`` leaves out `medal simulate`, whose import loads PyTorch."""
    parser = argparse.ArgumentParser(prog="medal", description="Medical active labelling platform.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run every service in one process (embedded mode)")
    up.add_argument("--host", default=None)
    up.add_argument("--port", type=int, default=None)
    up.set_defaults(func=_up)

    serve = commands.add_parser("serve", help="run one service's HTTP API (distributed mode)")
    serve.add_argument("service", choices=SERVICE_NAMES)
    serve.set_defaults(func=_serve)

    worker = commands.add_parser("worker", help="run one service's queue worker (distributed mode)")
    worker.add_argument("service", choices=SERVICE_NAMES)
    worker.set_defaults(func=_worker)

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(func=_migrate)

    demo = commands.add_parser("demo", help="the whole job on real CT data, embedded: ingest, rounds, export")
    demo.add_argument("--data", default=None, help="a labelled data-set folder (default: ../shared covid19-ct-seg)")
    demo.set_defaults(func=_demo)

    from medal.export_cli import register as register_export

    register_export(commands)
    from medal.models_cli import register as register_models

    register_models(commands)
    from medal.ingest_cli import register as register_ingest

    register_ingest(commands)
    from medal.dlq_cli import register as register_dlq

    register_dlq(commands)
    from medal.access.keys_cli import register as register_keys

    register_keys(commands)
    from medal.pull_cli import register as register_pull

    register_pull(commands)
    if not with_simulate:
        return parser
    try:
        from medal.simulate.cli import register
    except ModuleNotFoundError as exc:  # the learning extras are not installed (API-only image)
        if exc.name not in ("torch", "monai", "matplotlib", "medal.simulate", "medal.simulate.cli"):
            raise
    else:
        register(commands)
    return parser


_COMMANDS = ("up", "serve", "worker", "migrate", "demo", "export", "models", "ingest", "pull", "push", "dlq", "keys")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in arguments if not a.startswith("-")), "")
    # Only `medal simulate` (and help) pay for importing PyTorch; `medal serve ingest` never loads it.
    parser = build_parser(with_simulate=command in ("simulate", "") or command not in _COMMANDS)
    args = parser.parse_args(arguments)
    try:
        level = load_settings().log_level
    except ConfigurationError as exc:
        print(f"medal: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "pydicom", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pika logs every failed connection attempt with a traceback; medal.bus reports them in one line.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    try:
        return int(args.func(args))
    except ConfigurationError as exc:
        print(f"medal: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
