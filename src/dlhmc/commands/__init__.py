"""Subcommands of the ``dlhmc`` command line, one module each."""
