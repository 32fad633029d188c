"""Discrete-event call-center simulator that drives the pacers of `dialer.pacing`."""
