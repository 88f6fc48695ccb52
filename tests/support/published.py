"""Secret values this repository once printed (the former development defaults and the test
plugin's former fixed values). Attack tests sign with them; every app must refuse them
(config/generated.py keeps only their digests)."""

from __future__ import annotations

FORMER_DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789abcdef"
FORMER_DEV_ENCRYPTION_KEY = "ZGV2LW9ubHktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM="
FORMER_TEST_JWT_SECRET = "test-jwt-secret-0123456789abcdef0123456789"
FORMER_TEST_ENCRYPTION_KEY = "dGVzdC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcy0hISE="
