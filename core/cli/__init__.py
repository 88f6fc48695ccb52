"""Flask CLI commands (``flask --app app <group> <command>``), one file per group.

Every module in this package lists its click groups in ``COMMANDS``; :mod:`.registry`
registers them on each app. Feature modules add theirs the same way from their own package.
"""
