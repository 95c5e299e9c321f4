"""Subcommands of the ``ebmlab`` CLI, one module each (see ``ebmlab.cli``)."""
