"""Feature modules for the production tests (added to ``MODULES_PACKAGES`` by their fixtures)."""
