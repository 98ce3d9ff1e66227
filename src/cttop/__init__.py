"""cttop: a top for the Linux conntrack table."""


def version() -> str:
    """cttop's version from the installed package's metadata (the one source: pyproject.toml)."""
    import importlib.metadata  # only the commands that print it pay for the import

    try:
        return importlib.metadata.version("cttop")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"  # run from a source tree that was never installed
