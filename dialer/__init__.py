"""Dialer engine: ARI controller, call and campaign logic, pacing, HTTP API."""
