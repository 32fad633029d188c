"""Provisioning of the local stack: Asterisk 22 (system or cached Debian sid root), PostgreSQL, Redis."""
