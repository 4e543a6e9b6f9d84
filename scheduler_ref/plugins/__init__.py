"""Built-in scheduling plugins, one per module (see :mod:`scheduler_ref.plugins.builtin`)."""
