"""`dialer demo`: the README's main job.

For now it brings the stack up, originates one call through ARI into the simulated public
network (a person who answers after two rings and talks a few seconds), prints the call's
outcome and exits; the demo campaign replaces it (issue 6).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from dialer.cli import UserError
from dialer.provision.cli import prepare_stack
from dialer.provision.smoke import place_call
from dialer.settings import from_environment

DEMO_NUMBER = "+12125551205"  # simulated network: a person, 2 s of ringing, hangs up 5 s after answer


def _demo(args: argparse.Namespace) -> int:
    settings = from_environment()
    started = time.monotonic()
    print("Bringing up PostgreSQL, Redis and Asterisk...")
    instance = prepare_stack(settings, start_asterisk=False)
    assert instance is not None
    already_running = instance.pid() is not None and instance.ari_answers() is not None
    instance.start()
    print(f"Asterisk {instance.install.version} answers on {instance.ari_url} ({time.monotonic() - started:.1f} s)")
    try:
        print(f"Calling {args.number} through the trunk into the simulated network...")
        try:
            outcome = asyncio.run(
                place_call(
                    instance.ari_url,
                    instance.config.ari_user,
                    instance.config.ari_password,
                    instance.config.ari_app,
                    args.number,
                    ring_timeout=30,
                    overall_timeout=180,
                )
            )
        except (OSError, TimeoutError, RuntimeError) as error:
            raise UserError(f"The demo call failed: {error}") from None
    finally:
        if not already_running and not args.keep_running:
            instance.stop()
    summary = outcome.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        width = max(len(key) for key in summary)
        print("Call outcome:")
        for key, value in summary.items():
            print(f"  {key:<{width}}  {value}")
    return 0 if outcome.cause is not None else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser("demo", help="the main job: bring the stack up and run the demo")
    demo.add_argument("--number", default=DEMO_NUMBER, help="number to call in the simulated network")
    demo.add_argument("--keep-running", action="store_true", help="leave Asterisk running afterwards")
    demo.add_argument("--json", action="store_true", help="print the outcome as one JSON object")
    demo.set_defaults(handler=_demo)
