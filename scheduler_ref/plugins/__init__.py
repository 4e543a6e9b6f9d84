"""Built-in plugins, one per module; :mod:`scheduler_ref.plugins.register` is the table."""
