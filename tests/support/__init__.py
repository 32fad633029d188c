"""Test helpers shared across areas (fault-injecting TCP proxy, ...)."""
