"""Exit statuses the command line shares, in a module of their own: the entry point needs them before
anything else is loaded (a Ctrl-C during the imports)."""

INTERRUPTED = 130  # the shell's status for a command ended by SIGINT
