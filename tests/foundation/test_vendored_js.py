"""The JavaScript the pages load is exactly what the manifest says came from the npm registry."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "dialer" / "web" / "static"
VENDOR = STATIC / "vendor"
MANIFEST = json.loads((VENDOR / "MANIFEST.json").read_text())


def test_every_vendored_file_matches_its_checksum_and_nothing_else_is_there() -> None:
    assert MANIFEST, "vendor/MANIFEST.json lists no library"
    for name, entry in MANIFEST.items():
        assert entry["name"] == name
        directory = VENDOR / entry["directory"]
        assert entry["directory"] == f"{name}-{entry['version']}"  # pinned: the version is in every URL
        on_disk = {path.relative_to(directory).as_posix() for path in directory.rglob("*") if path.is_file()}
        assert on_disk == set(entry["files"]), f"{name}: files added or missing beside the manifest"
        for relative, checksum in entry["files"].items():
            actual = hashlib.sha256((directory / relative).read_bytes()).hexdigest()
            assert actual == checksum, f"{name}/{relative} differs from the registry's file"


def test_the_manifest_names_licence_source_and_integrity() -> None:
    for name, entry in MANIFEST.items():
        assert entry["license"] == "MIT"
        assert entry["license_file"] in entry["files"]
        licence = (VENDOR / entry["directory"] / entry["license_file"]).read_text()
        assert "Permission is hereby granted, free of charge" in licence
        assert entry["source"] == f"https://registry.npmjs.org/{name}/-/{name}-{entry['version']}.tgz"
        assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", entry["integrity"])
        assert re.fullmatch(r"[0-9a-f]{64}", entry["tarball_sha256"])
        assert entry["entry"] in entry["files"]


def test_the_softphone_loads_the_vendored_library_and_nothing_from_elsewhere() -> None:
    entry = MANIFEST["sip.js"]
    source = (STATIC / "softphone.js").read_text()
    imports = re.findall(r'^(?!\s*//).*\bfrom\s+"([^"]+)"', source, re.MULTILINE)  # not in comments
    assert imports == [f"./vendor/{entry['directory']}/{entry['entry']}"]
    for page in STATIC.glob("*.html"):
        assert not re.search(r'src="(https?:)?//', page.read_text()), f"{page.name} loads a script from another host"
