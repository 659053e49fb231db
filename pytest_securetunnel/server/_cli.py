"""``python -m pytest_securetunnel serve`` and the ``securetunnel-server`` command."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any, TextIO

from pytest_securetunnel.mqtt import add_mqtt_arguments, mqtt_info, start_mqtt

from ._auth import parse_access_key
from ._http import HttpLimits
from ._server import SecureTunnelServer

_DESCRIPTION = (
    "Run the AWS IoT Secure Tunneling fake as a local service: the control plane over "
    "HTTP (AWS JSON 1.1, point --endpoint-url / endpoint_url at it) and the WebSocket "
    "data plane. Stops cleanly on SIGINT and SIGTERM."
)


class _Shutdown(BaseException):
    """Raised in the main thread by SIGINT or SIGTERM."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _access_key(value: str) -> str:
    try:
        parse_access_key(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port {value!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} must be between 0 and 65535 (0: any)")
    return port


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(value: str) -> int | float:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
        if not 0 < number < float("inf"):
            raise argparse.ArgumentTypeError(f"{value!r} must be a positive number")
        return number

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``serve``."""
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="control-plane address to bind (default: 127.0.0.1, loopback only)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow --host to be an address other than loopback (reachable from other "
        "machines; the admin API then needs its token)",
    )
    parser.add_argument(
        "--port", type=_port, default=0, help="control-plane port (default: 0, a free port)"
    )
    parser.add_argument(
        "--data-port", type=_port, default=0, help="data-plane ws:// port (default: 0)"
    )
    parser.add_argument(
        "--data-tls-port", type=_port, default=0, help="data-plane wss:// port (default: 0)"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed for tunnel IDs and tokens (replayable)"
    )
    parser.add_argument(
        "--access-key",
        action="append",
        type=_access_key,
        default=None,
        metavar="AKID:SECRET[:ACCOUNT_ID]",
        help="accept only requests SigV4-signed with this key (repeatable); the optional "
        "account ID is the account the key acts for",
    )
    parser.add_argument(
        "--deny",
        action="append",
        default=[],
        metavar="OPERATION",
        help="answer this operation with AccessDeniedException (repeatable), e.g. CloseTunnel",
    )
    parser.add_argument("--no-tls", action="store_true", help="serve the data plane on ws:// only")
    parser.add_argument("--no-data-plane", action="store_true", help="serve the control plane only")
    parser.add_argument(
        "--region", default="us-east-1", help="region of unsigned requests (default: us-east-1)"
    )
    parser.add_argument(
        "--extra-region",
        action="append",
        default=[],
        metavar="NAME",
        help="also serve this region, which botocore's endpoint data does not list (repeatable)",
    )
    parser.add_argument(
        "--account-id",
        default="123456789012",
        help="account of unknown access keys (default: 123456789012)",
    )
    parser.add_argument(
        "--admin-token",
        default=None,
        metavar="TOKEN",
        help="bearer token of the admin API (default: a random one when --access-key or "
        "--allow-remote is given; printed at start-up)",
    )
    parser.add_argument(
        "--request-timeout",
        type=_positive(float),
        default=HttpLimits.request_timeout,
        metavar="SECONDS",
        help="seconds a request may take to arrive in full (default: %(default)s)",
    )
    parser.add_argument(
        "--max-connections",
        type=_positive(int),
        default=HttpLimits.max_connections,
        help="connections served at once; more get 503 (default: %(default)s)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive(int),
        default=HttpLimits.max_body_bytes,
        help="largest request body accepted; larger get 413 (default: %(default)s)",
    )
    parser.add_argument(
        "--max-calls",
        type=_positive(int),
        default=None,
        help="calls kept in the fake's call log; older ones are dropped (default: 10000)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each call on stderr")
    add_mqtt_arguments(parser, _port)


def serve(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the server until SIGINT or SIGTERM; return the exit code.

    ``out`` (default: stdout) gets the endpoints and the JSON ready/stopped lines;
    ``err`` (default: stderr) gets one line per call and errors.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr

    def log(line: str) -> None:
        print(line, file=err, flush=True)

    try:
        server = SecureTunnelServer(
            host=args.host,
            port=args.port,
            data_plane=not args.no_data_plane,
            tls=not args.no_tls,
            data_port=args.data_port,
            data_tls_port=args.data_tls_port,
            access_keys=args.access_key,
            deny=args.deny,
            log=None if args.quiet else log,
            seed=args.seed,
            **({} if args.max_calls is None else {"max_calls": args.max_calls}),
            default_region=args.region,
            extra_regions=args.extra_region,
            default_account_id=args.account_id,
            allow_remote=args.allow_remote,
            admin_token=args.admin_token,
            limits=HttpLimits(
                max_body_bytes=args.max_body_bytes,
                request_timeout=args.request_timeout,
                max_connections=args.max_connections,
            ),
        )
    except ValueError as exc:
        print(f"securetunnel-server: error: {exc}", file=err, flush=True)
        return 2

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise _Shutdown(signum)

    previous = {
        signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    received: int | None = None
    broker: Any = None
    try:
        try:
            server.start()
            broker = start_mqtt(args, server.fake)
        except (OSError, ValueError, ImportError) as exc:
            print(f"securetunnel-server: error: {exc}", file=err, flush=True)
            return 1
        _announce(server, out, broker, getattr(args, "mqtt_thing", []))
        threading.Event().wait()
    except _Shutdown as shutdown:
        received = shutdown.signum
    finally:
        for signum in previous:
            signal.signal(signum, signal.SIG_IGN)
        try:
            try:
                if broker is not None:
                    broker.stop()
            finally:
                server.stop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    name = signal.Signals(received).name if received is not None else None
    print(json.dumps({"event": "stopped", "signal": name}), file=out, flush=True)
    return 0


def _announce(
    server: SecureTunnelServer, out: TextIO, broker: Any = None, things: Sequence[str] = ()
) -> None:
    info: dict[str, Any] = {"event": "ready", "pid": os.getpid(), **server.info()}
    info["admin_token"] = server.admin_token
    lines = [f"control plane: {server.endpoint_url}"]
    if info["data_endpoint"]:
        lines.append(f"data plane: {info['data_endpoint']}")
    if info["data_tls_endpoint"]:
        lines.append(f"data plane (TLS): {info['data_tls_endpoint']} (CA file: {info['ca_file']})")
    lines.append(f"admin API: {server.admin_url}/")
    if broker is not None:
        mqtt_lines, info["mqtt"] = mqtt_info(broker, list(things))
        lines += mqtt_lines
    if server.admin_token is not None:
        lines.append(
            f"admin API token: {server.admin_token} (send 'Authorization: Bearer "
            f"{server.admin_token}')"
        )
    for line in lines:
        print(f"securetunnel-server {line}", file=out)
    print(json.dumps(info), file=out, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pytest_securetunnel serve [options]``."""
    parser = argparse.ArgumentParser(prog="python -m pytest_securetunnel")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_parser = commands.add_parser("serve", help="run the fake as a local service")
    serve_parser.description = _DESCRIPTION
    add_arguments(serve_parser)
    args = parser.parse_args(argv)
    return serve(args)


def server_main(argv: Sequence[str] | None = None) -> int:
    """The ``securetunnel-server [options]`` console script (same as ``serve``)."""
    parser = argparse.ArgumentParser(prog="securetunnel-server", description=_DESCRIPTION)
    add_arguments(parser)
    return serve(parser.parse_args(argv))
