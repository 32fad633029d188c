"""The dialer's HTTP API for the CRM, agents' consoles and supervisors."""
