"""`dialer stack ...` and `dialer asterisk ...`: bring the local stack up, down, and report on it."""

from __future__ import annotations

import argparse
import asyncio
import sys

from dialer.cli import UserError
from dialer.commands.config import require_usable
from dialer.provision.asterisk import (
    AsteriskInstall,
    AsteriskInstance,
    ProvisionError,
    ensure_install,
    find_cached_root,
    find_system_install,
)
from dialer.provision.cluster import (
    Cluster,
    cluster_layout,
    forget_cluster_state,
    load_cluster_state,
    save_cluster_state,
)
from dialer.provision.credentials import CredentialsError, sip_credentials
from dialer.provision.kamailio import SipAddress
from dialer.provision.services import ensure_postgres, ensure_redis, postgres_answers, redis_answers
from dialer.settings import Settings, from_environment


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def dev_instance(settings: Settings) -> AsteriskInstance:
    """The developer's Asterisk instance, on the ports from the settings."""
    try:
        return AsteriskInstance.for_settings(ensure_install(settings, say=_say), settings)
    except ProvisionError as error:
        raise UserError(str(error)) from None


def prepare_stack(settings: Settings, *, start_asterisk: bool, migrate: bool = True) -> AsteriskInstance | None:
    """PostgreSQL and Redis answering, the CRM schema migrated, Asterisk installed (and started when asked)."""
    require_usable(settings)
    try:
        ensure_postgres(settings.pg_dsn, say=_say)
        ensure_redis(settings.redis_url, say=_say)
        if migrate:
            _migrate(settings.pg_dsn)
        instance = dev_instance(settings)
        if settings.default_password_warning:
            _say(settings.default_password_warning)
        if start_asterisk:
            instance.start()
    except ProvisionError as error:
        raise UserError(str(error)) from None
    return instance


def _migrate(dsn: str) -> None:
    from crm_bridge.migrate import MigrationError, ensure_schema
    from crm_bridge.pg import DatabaseUnavailable

    try:
        asyncio.run(ensure_schema(dsn))
    except (DatabaseUnavailable, MigrationError) as error:
        raise ProvisionError(str(error)) from None


def _stack_up(args: argparse.Namespace) -> int:
    settings = from_environment()
    if args.nodes is not None:
        return _cluster_up(settings, args)
    if load_cluster_state(settings) is not None:
        raise UserError("A cluster of these settings is up: stop it first ('dialer stack down').")
    instance = prepare_stack(settings, start_asterisk=not args.no_asterisk, migrate=not args.no_migrate)
    assert instance is not None
    print(f"PostgreSQL {settings.pg_dsn.rsplit('@', 1)[-1]}: up")
    print(f"Redis {settings.redis_url.rsplit('@', 1)[-1]}: up")
    if not args.no_asterisk:
        print(f"Asterisk {instance.install.version}: ARI {instance.ari_url} (instance {instance.config.name})")
    else:
        print(f"Asterisk {instance.install.version}: installed in {instance.install.root}")
    return 0


def _carriers(texts: list[str]) -> tuple[SipAddress, ...]:
    try:
        return tuple(SipAddress.parse(text) for text in texts)
    except ValueError as error:
        raise UserError(f"--carrier takes HOST:PORT (an IPv4 address and a port): {error}.") from None


def _cluster_up(settings: Settings, args: argparse.Namespace) -> int:
    """N Asterisk nodes behind a Kamailio edge (docs/cluster.md)."""
    if args.no_asterisk:
        raise UserError("--nodes starts Asterisk nodes: leave out --no-asterisk.")
    carriers = _carriers(args.carrier)
    try:
        cluster_layout(args.nodes, instance=settings.instance, ari_port=settings.ari_port, sip_port=settings.sip_port,
                       carrier_port=settings.carrier_port, rtp_start=settings.rtp_start, rtp_end=settings.rtp_end)
    except ValueError as error:
        raise UserError(f"Cannot lay out {args.nodes} nodes: {error}.") from None
    single = prepare_stack(settings, start_asterisk=False, migrate=not args.no_migrate)
    assert single is not None
    if single.pid() is not None:
        raise UserError(f"The single Asterisk instance {single.config.name} is running on the ports the cluster "
                        "uses: stop it first ('dialer stack down').")
    cluster = Cluster.for_settings(single.install, settings, args.nodes, carriers)
    save_cluster_state(settings, args.nodes, carriers)
    try:
        cluster.start()
    except ProvisionError as error:
        cluster.stop()
        forget_cluster_state(settings)
        raise UserError(str(error)) from None
    print(f"PostgreSQL {settings.pg_dsn.rsplit('@', 1)[-1]}: up")
    print(f"Redis {settings.redis_url.rsplit('@', 1)[-1]}: up")
    print(f"Kamailio edge: SIP udp {cluster.edge.config.edge} (phones register here; log {cluster.edge.log_file})")
    if cluster.edge.config.ws_url:
        print(f"Kamailio edge: SIP over WebSocket {cluster.edge.config.ws_url} (browser phones and consoles)")
    for node in cluster.nodes:
        print(f"Asterisk {node.install.version} node {node.config.name}: ARI {node.ari_url}, "
              f"SIP 127.0.0.1:{node.config.sip_port}")
    return 0


def _running_cluster(settings: Settings, install: AsteriskInstall) -> Cluster | None:
    state = load_cluster_state(settings)
    if state is None:
        return None
    count, carriers = state
    try:
        return Cluster.for_settings(install, settings, count, carriers)
    except ValueError:
        return None


def _stack_down(args: argparse.Namespace) -> int:
    settings = from_environment()
    install = find_system_install() or _cached_root_or_none(settings)
    if install is None:
        print("Asterisk: not installed")
        return 0
    gracefully = getattr(args, "gracefully", False)
    cluster = _running_cluster(settings, install)
    if cluster is not None:
        cluster.stop(getattr(args, "timeout", 15.0), gracefully=gracefully)
        forget_cluster_state(settings)
        print(f"Kamailio edge and {len(cluster.nodes)} Asterisk nodes: stopped")
        return 0
    AsteriskInstance.for_settings(install, settings).stop(getattr(args, "timeout", 15.0), gracefully=gracefully)
    print(f"Asterisk instance {settings.instance}: stopped")
    return 0


def _asterisk_run(args: argparse.Namespace) -> int:
    """Render and run Asterisk in the foreground (the systemd unit's main process)."""
    del args
    settings = from_environment()
    require_usable(settings)
    instance = dev_instance(settings)
    if instance.pid() is not None:
        raise UserError(f"Asterisk instance {instance.config.name} is already running: stop it first "
                        "('dialer asterisk stop').")
    try:
        instance.run_foreground()
    except ProvisionError as error:
        raise UserError(str(error)) from None
    return 0  # not reached: the process became Asterisk


def _cached_root_or_none(settings: Settings) -> AsteriskInstall | None:
    try:
        return find_cached_root(settings)
    except ProvisionError as error:
        raise UserError(str(error)) from None


def _stack_status(args: argparse.Namespace) -> int:
    del args
    settings = from_environment()
    healthy = True
    for name, up in (("PostgreSQL", postgres_answers(settings.pg_dsn)), ("Redis", redis_answers(settings.redis_url))):
        print(f"{name}: {'up' if up else 'down'}")
        healthy &= up
    install = find_system_install() or _cached_root_or_none(settings)
    if install is None:
        print(f"Asterisk: not installed (cache: {settings.asterisk_root})")
        return 1
    cluster = _running_cluster(settings, install)
    if cluster is not None:
        return _cluster_status(cluster, healthy)
    instance = AsteriskInstance.for_settings(install, settings)
    version = instance.ari_answers()
    print(f"Asterisk {install.version} ({'system' if not install.chrooted else install.root}): "
          + (f"running, ARI {instance.ari_url}" if version else "stopped"))
    return 0 if healthy and version else 1


def _cluster_status(cluster: Cluster, healthy: bool) -> int:
    edge = cluster.edge
    states: dict[str, str] = {}
    if edge.pid() is not None and edge.answers():
        states = edge.node_states()
        print(f"Kamailio edge: running, SIP udp {edge.config.edge}"
              + (f", WebSocket {edge.config.ws_url}" if edge.config.ws_url else ""))
    else:
        print(f"Kamailio edge: stopped (SIP udp {edge.config.edge})")
        healthy = False
    for node, address in zip(cluster.nodes, edge.config.nodes, strict=True):
        up = node.ari_answers() is not None
        healthy &= up
        dispatch = {"A": "in dispatch", "I": "out of dispatch", "D": "disabled"}.get(states.get(address.uri, "?")[:1],
                                                                                   "unknown to the edge")
        print(f"Asterisk node {node.config.name}: {'running' if up else 'stopped'}, ARI {node.ari_url}, "
              f"SIP {address} ({dispatch})")
    return 0 if healthy else 1


def _asterisk_build(args: argparse.Namespace) -> int:
    del args
    instance = dev_instance(from_environment())
    print(f"Asterisk {instance.install.version} in {instance.install.root}")
    return 0


def _asterisk_start(args: argparse.Namespace) -> int:
    del args
    settings = from_environment()
    require_usable(settings)
    if load_cluster_state(settings) is not None:
        raise UserError("A cluster of these settings is up (dialer stack up --nodes): its nodes use these ports; "
                        "stop it first ('dialer stack down').")
    instance = dev_instance(settings)
    if settings.default_password_warning:
        _say(settings.default_password_warning)
    try:
        instance.start()
    except ProvisionError as error:
        raise UserError(str(error)) from None
    print(f"Asterisk {instance.install.version} running: ARI {instance.ari_url}, SIP 127.0.0.1:{instance.config.sip_port}")
    return 0


def _asterisk_sip_credentials(args: argparse.Namespace) -> int:
    """Print one phone's SIP credentials, to configure a desk phone or a browser by hand."""
    settings = from_environment()
    try:
        login = sip_credentials(args.endpoint, settings.sip_credentials_file)
    except CredentialsError as error:
        raise UserError(str(error)) from None
    print(f"endpoint  {login.endpoint}")
    print(f"username  {login.username}")
    print(f"password  {login.password}")
    print(f"sip uri   {login.sip_uri}")
    host = login.sip_uri.rpartition("@")[2]
    if login.ws_url:
        print(f"websocket {login.ws_url}")
    elif login.tls_port:
        print(f"register  tls {host}:{login.tls_port} (SRTP media when the settings ask for it)")
    else:
        print(f"register  udp {host}:{login.udp_port}")
    return 0


def _asterisk_cli(args: argparse.Namespace) -> int:
    instance = dev_instance(from_environment())
    if instance.pid() is None:
        raise UserError(f"Asterisk instance {instance.config.name} is not running: run 'dialer asterisk start'.")
    print(instance.cli(" ".join(args.words)), end="")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stack = subparsers.add_parser("stack", help="bring the local PostgreSQL, Redis and Asterisk up or down")
    stack_commands = stack.add_subparsers(dest="stack_command", metavar="ACTION", required=True)
    up = stack_commands.add_parser("up", help="install what is missing and start everything")
    up.add_argument("--no-asterisk", action="store_true", help="install Asterisk but do not start it")
    up.add_argument("--no-migrate", action="store_true", help="leave the CRM database's schema as it is")
    up.add_argument("--nodes", type=int, metavar="N",
                    help="a cluster: N Asterisk nodes behind a Kamailio SIP edge on the SIP port (docs/cluster.md)")
    up.add_argument("--carrier", action="append", default=[], metavar="HOST:PORT",
                    help="with --nodes: a carrier whose calls the edge dispatches to the nodes (repeatable)")
    up.set_defaults(handler=_stack_up)
    stack_commands.add_parser("down", help="stop the development Asterisk (or the cluster's nodes and edge)"
                              ).set_defaults(handler=_stack_down)
    stack_commands.add_parser("status", help="what answers and what does not").set_defaults(handler=_stack_status)

    asterisk = subparsers.add_parser("asterisk", help="the development Asterisk instance")
    commands = asterisk.add_subparsers(dest="asterisk_command", metavar="ACTION", required=True)
    commands.add_parser("build", help="find or build Asterisk 22 (cached Debian sid root)").set_defaults(
        handler=_asterisk_build
    )
    commands.add_parser("start", help="render the configuration and start; wait for ARI").set_defaults(
        handler=_asterisk_start
    )
    stop = commands.add_parser("stop", help="stop it")
    stop.add_argument("--gracefully", action="store_true",
                      help="refuse new calls and let the calls that are up end first (up to --timeout)")
    stop.add_argument("--timeout", type=float, default=15.0, help="seconds to wait before stopping anyway")
    stop.set_defaults(handler=_stack_down)
    commands.add_parser("run", help="render and run in the foreground (for a systemd unit)").set_defaults(
        handler=_asterisk_run
    )
    commands.add_parser("status", help="is it running").set_defaults(handler=_stack_status)
    credentials = commands.add_parser(
        "sip-credentials", help="print one phone's generated SIP credentials (e.g. agent1001, agent1001-web)"
    )
    credentials.add_argument("endpoint")
    credentials.set_defaults(handler=_asterisk_sip_credentials)
    cli = commands.add_parser("cli", help="run one Asterisk CLI command")
    cli.add_argument("words", nargs="+")
    cli.set_defaults(handler=_asterisk_cli)
