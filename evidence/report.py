"""The packet's human-readable report: HTML from one Jinja2 template (autoescaped: names and
notes come from the CRM and are shown as text, never as markup), and the same HTML as a PDF
through WeasyPrint (a maintained HTML/CSS-to-PDF renderer; fpdf2 would need a second layout)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.ChainableUndefined,
    trim_blocks=True, lstrip_blocks=True,
)


def render_html(findings: Mapping[str, Any], packet: Mapping[str, Any]) -> str:
    return _environment.get_template("report.html.j2").render(f=findings, packet=packet)


def render_pdf(html: str) -> bytes:
    """The report as a PDF (Letter pages, numbered)."""
    from weasyprint import HTML  # imported here: it loads Pango, which only packets need

    pdf: bytes = HTML(string=html, base_url=str(TEMPLATES)).write_pdf()
    return pdf
