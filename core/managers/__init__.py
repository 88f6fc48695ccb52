"""One file per manager; each follows the contract in :mod:`core.managers.base`."""
