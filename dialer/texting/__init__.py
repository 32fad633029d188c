"""Texting: two-way SMS as a kind of work on the runtime kernel (`docs/texting.md`)."""
