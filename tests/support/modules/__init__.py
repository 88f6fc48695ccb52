"""Feature modules used only by the tests (``MODULES_PACKAGES=modules,tests.support.modules``)."""
