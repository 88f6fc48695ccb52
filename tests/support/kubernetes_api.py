"""The one piece of Kubernetes that Vault's ``kubernetes`` auth method talks to: the
TokenReview API, served by the test, and the service-account tokens it reviews.

- :class:`ServiceAccountIssuer` signs tokens shaped like the projected service-account tokens
  the kubelet mounts (RS256, ``iss``/``sub``/``aud``/``exp`` and the ``kubernetes.io`` claim).
- :class:`TokenReviewServer` answers ``POST /apis/authentication.k8s.io/v1/tokenreviews`` over
  HTTPS, with a certificate from a CA of its own (``ca_pem``, what Vault's config names), as
  the API server does: ``authenticated`` with the service account's user name when the token's
  signature, expiry and audience hold and it was not revoked, otherwise ``authenticated:
  false`` with an error. It records every review (who asked, for which token).
- :class:`ProjectedToken` writes the token where a pod reads it, the way the kubelet's atomic
  writer does: ``token`` -> ``..data/token``, ``..data`` -> a timestamped folder swapped in
  one rename, so a reader never sees half a file.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from core.devstack import free_port

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
ISSUER = "https://kubernetes.default.svc.cluster.local"


class ServiceAccountIssuer:
    """Signs service-account tokens with a key of its own (the cluster's signing key)."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:16]
        self.revoked: set[str] = set()  # jti of tokens whose pod was deleted

    def issue(
        self,
        namespace: str,
        name: str,
        *,
        audience: str = "vault",
        ttl: float = 3600,
        key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "aud": [audience],
            "iat": now,
            "nbf": now,
            "exp": now + int(ttl),
            "jti": uuid.uuid4().hex,
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": str(uuid.uuid5(uuid.NAMESPACE_OID, name))},
                "pod": {"name": f"{name}-7d9f-abcde", "uid": str(uuid.uuid4())},
            },
        }
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": self.kid})

    def revoke(self, token: str) -> None:
        self.revoked.add(jwt.decode(token, options={"verify_signature": False})["jti"])

    def review(self, token: str, audiences: list[str]) -> dict[str, Any]:
        """The ``status`` of a TokenReview of ``token``."""
        try:
            claims = jwt.decode(
                token,
                self.key.public_key(),
                algorithms=["RS256"],
                audience=audiences or None,
                issuer=ISSUER,
                # No audiences asked for: the API server's own, which takes any here.
                options={"require": ["exp", "sub", "aud"], "verify_aud": bool(audiences)},
            )
        except jwt.InvalidTokenError as exc:
            return {"authenticated": False, "error": f"invalid bearer token: {exc}"}
        if claims.get("jti") in self.revoked:
            return {"authenticated": False, "error": "token has been invalidated"}
        account = claims["kubernetes.io"]
        return {
            "authenticated": True,
            "user": {
                "username": claims["sub"],
                "uid": account["serviceaccount"]["uid"],
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{account['namespace']}",
                    "system:authenticated",
                ],
            },
            "audiences": claims["aud"],
        }


@dataclass(frozen=True)
class Review:
    """One TokenReview the server answered."""

    caller: str  # the subject of the bearer token Vault sent
    subject: str  # the subject of the token under review ("" when unreadable)
    jti: str
    authenticated: bool


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, Any] | None = None
) -> x509.Certificate:
    """A CA certificate (``issuer`` None) or a server certificate for 127.0.0.1."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, signing_key = issuer or (name, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
    else:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, False)
    return builder.sign(signing_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class TokenReviewServer:
    """``TokenReview`` over HTTPS on a free loopback port, between start() and stop()."""

    def __init__(self, issuer: ServiceAccountIssuer) -> None:
        self.issuer = issuer
        self.reviews: list[Review] = []
        self.url = ""
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _certificate("kubernetes-test-ca", ca_key)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._cert = _certificate("kube-apiserver", self._key, (ca.subject, ca_key))
        #: The CA that signed the server's certificate (Vault's ``kubernetes_ca_cert``).
        self.ca_pem = _pem(ca)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> TokenReviewServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != REVIEW_PATH:
                    self._answer(404, {"kind": "Status", "code": 404})
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
                caller = owner.issuer.review(bearer, [])
                if not caller["authenticated"]:  # the reviewer itself must be someone
                    self._answer(401, {"kind": "Status", "code": 401, "reason": "Unauthorized"})
                    return
                token = body["spec"]["token"]
                status = owner.issuer.review(token, body["spec"].get("audiences") or [])
                unverified = jwt.decode(token, options={"verify_signature": False})
                owner.reviews.append(
                    Review(
                        caller["user"]["username"],
                        str(unverified.get("sub", "")),
                        str(unverified.get("jti", "")),
                        bool(status["authenticated"]),
                    )
                )
                answer = {**body, "status": status}
                self._answer(201, answer)

            def _answer(self, code: int, document: dict[str, Any]) -> None:
                data = json.dumps(document).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as folder:
            cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            cert.write_text(_pem(self._cert))
            key.write_bytes(
                self._key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            context.load_cert_chain(cert, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="token-review", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)


class ProjectedToken:
    """A projected service-account token volume in ``folder``; ``path`` is what a pod reads."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "token"

    def write(self, token: str) -> None:
        """Swap in a new token as the kubelet rotates it: new folder, one atomic rename."""
        version = self.folder / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{uuid.uuid4().hex[:8]}"
        version.mkdir()
        (version / "token").write_text(token)
        staging = self.folder / "..data_tmp"
        staging.unlink(missing_ok=True)
        staging.symlink_to(version.name)
        os.replace(staging, self.folder / "..data")
        if not self.path.is_symlink():
            self.path.symlink_to(Path("..data") / "token")
