"""Versioned SQL migrations, applied in order by `crm_bridge.migrate`."""
