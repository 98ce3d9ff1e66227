#!/usr/bin/env bash
# Build dist/cttop: one executable file holding Python, cttop and its dependencies, for boxes with no Python.
# Usage: scripts/build-binary.sh [DISTDIR]   (default: dist; the build's work files go to build/)
# Needs the pinned PyInstaller: .venv/bin/pip install -e '.[binary]' (the test extra includes it).
# Ships the man page beside the binary, generated from the built code's own help. The glibc it needs is the build box's: build on the oldest you support.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
dist=$(realpath -m "${1:-dist}")
work=$(realpath -m "${CTTOP_BUILD_DIR:-build}")

# The version pyproject pins, and no other: a different PyInstaller bundles differently.
want=$("$py" -c 'import tomllib; print(next(r.split("==")[1] for r in tomllib.load(open("pyproject.toml", "rb"))
["project"]["optional-dependencies"]["binary"] if r.startswith("pyinstaller==")))')
have=$("$py" -m PyInstaller --version 2>/dev/null || echo none)
if [ "$have" != "$want" ]; then
    echo "build-binary: PyInstaller $want is needed, found $have: $py -m pip install -e '.[binary]'" >&2
    exit 2
fi

# What PyInstaller cannot see by following imports:
#  - cttop.cli loads each command's module by name (importlib), and the lab runs cttop.lab.* with -m;
#  - textual.widgets loads every widget lazily (module __getattr__), and reads its version from its metadata;
#  - cttop.tcss is a data file; --version reads cttop's metadata;
#  - pyroute2 (the lab's rtnetlink) and shellingham (completion's shell detection) import submodules by name.
"$py" -m PyInstaller --noconfirm --clean --onefile --name cttop \
    --distpath "$dist" --workpath "$work" --specpath "$work" \
    --paths src \
    --collect-submodules cttop --collect-data cttop --copy-metadata cttop \
    --collect-submodules textual --collect-data textual --copy-metadata textual \
    --collect-submodules pyroute2 --collect-submodules shellingham \
    --collect-submodules prometheus_client --collect-submodules typer \
    --log-level WARN \
    scripts/binary_main.py
"$py" scripts/gen-manpage.py --stdout >"$dist/cttop.1"  # from this build's own --help, not a copy
shown=$(realpath --relative-base=. "$dist")
echo "built $shown/cttop ($(du -h "$dist/cttop" | cut -f1)) and $shown/cttop.1"
