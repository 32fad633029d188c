"""Vendor a browser JavaScript library from the npm registry into dialer/web/static/vendor/.

    .venv/bin/python scripts/vendor_js.py sip.js 0.21.2
    .venv/bin/python scripts/vendor_js.py uplot 1.6.32 --files dist/uPlot.esm.js dist/uPlot.min.css \
        --entry dist/uPlot.esm.js

Runs `npm pack NAME@VERSION` (npm checks the tarball against the registry's integrity hash),
copies the package's browser files (`lib/**/*.js`, no type declarations or source maps) and
its licence text into `vendor/NAME-VERSION/`, and records in `vendor/MANIFEST.json` the name,
version, licence, the tarball's registry URL and integrity, and the SHA-256 of every file
copied. The pages load the files as they are (native ES modules): no CDN, no build step.
`tests/foundation/test_vendored_js.py` checks the committed files against the manifest.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[1] / "dialer" / "web" / "static" / "vendor"
LICENCE_NAMES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "LICENCE.md")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def npm_pack(name: str, version: str, workdir: Path) -> tuple[Path, dict[str, object]]:
    result = subprocess.run(
        ["npm", "pack", f"{name}@{version}", "--json", "--pack-destination", str(workdir)],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        sys.exit(f"npm pack {name}@{version} failed: {result.stderr.strip()[-500:]}")
    info = json.loads(result.stdout)[0]
    return workdir / info["filename"], info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("version")
    parser.add_argument("--files", nargs="+", default=["lib/**/*.js"],
                        help="the package's files to copy (globs; default lib/**/*.js)")
    parser.add_argument("--entry", default="lib/index.js", help="the module pages import")
    args = parser.parse_args()
    view = subprocess.run(["npm", "view", f"{args.name}@{args.version}", "--json", "license", "dist"],
                          capture_output=True, text=True, check=True)
    metadata = json.loads(view.stdout)
    with tempfile.TemporaryDirectory() as work:
        tarball, info = npm_pack(args.name, args.version, Path(work))
        integrity = str(info["integrity"])
        algorithm, _, digest = integrity.partition("-")
        actual = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
        if integrity != metadata["dist"]["integrity"] or actual != digest:
            sys.exit(f"{tarball.name}: integrity does not match the registry's")
        with tarfile.open(tarball) as archive:
            archive.extractall(work, filter="data")
        package = Path(work) / "package"
        target = VENDOR / f"{args.name}-{args.version}"
        if target.exists():
            shutil.rmtree(target)
        files: dict[str, str] = {}
        sources = sorted({path for pattern in args.files for path in package.glob(pattern)})
        licences = [package / name for name in LICENCE_NAMES if (package / name).exists()]
        if not licences:
            sys.exit(f"{args.name}@{args.version} ships no licence file")
        for source in [*sources, licences[0]]:
            relative = source.relative_to(package)
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
            files[relative.as_posix()] = sha256(destination)
        manifest_path = VENDOR / "MANIFEST.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        manifest[args.name] = {
            "name": args.name,
            "version": args.version,
            "license": metadata["license"],
            "license_file": licences[0].name,
            "source": metadata["dist"]["tarball"],
            "integrity": integrity,
            "tarball_sha256": sha256(tarball),
            "directory": target.name,
            "entry": args.entry,
            "files": files,
        }
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"{args.name} {args.version}: {len(files)} files in {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
