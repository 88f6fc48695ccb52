"""Administration routes under ``/userauth/admin/`` (role ``admin``; exempt from maintenance),
in :mod:`.routes`."""

from modules.admin.module import AdminModule

__all__ = ["AdminModule"]
