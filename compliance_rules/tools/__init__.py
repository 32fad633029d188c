"""Maintainer tools that regenerate the data files shipped in `compliance_rules/data/`."""
