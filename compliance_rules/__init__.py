"""The compliance gate: pure rules, rule data with citations, Redis-backed lists."""
