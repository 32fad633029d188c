"""Supervisors monitoring live calls: listen, whisper, barge (pure machine, runtime, HTTP API)."""
