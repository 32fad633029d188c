"""The `dialer` command's subcommands, one module each (`register(subparsers)`); `dialer/cli.py`
wires them together. Libraries never import from here."""

# The outboxes the commands keep in DIALER_STATE_DIR for rows PostgreSQL did not take at once
# (`dialer serve` delivers what they leave pending; crm_bridge.outbox.deliver_left_over).
CLI_OUTBOX = "cli"
EVIDENCE_OUTBOX = "evidence-cli"
COMMAND_OUTBOXES = (CLI_OUTBOX, EVIDENCE_OUTBOX)
# How long a command waits for `dialer serve` to let go of its outbox (it holds it no longer
# than COMMAND_OUTBOX_DELIVERY_SECONDS at a time).
COMMAND_OUTBOX_DELIVERY_SECONDS = 5.0
COMMAND_OUTBOX_LOCK_WAIT = 3 * COMMAND_OUTBOX_DELIVERY_SECONDS
