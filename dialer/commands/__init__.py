"""The `dialer` command's subcommands, one module each (`register(subparsers)`); `dialer/cli.py`
wires them together. Libraries never import from here."""
