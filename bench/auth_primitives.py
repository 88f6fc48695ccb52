"""Per-operation cost of the authentication primitives, with the configured (default) settings.

    .venv/bin/python -m bench.auth_primitives [--min-time 0.3] [--repeat 5] [--smoke]

timeit-style loops in this process (no gevent, no HTTP): each operation runs in batches of at
least ``--min-time`` seconds, ``--repeat`` times; the table gives the median and best wall time
per operation and the CPU time (``time.process_time``) per operation. Managers are built from
settings exactly as the app builds them; MongoDB and Redis are real servers from
``core.devstack`` (only the rows marked "+ Redis" or "+ MongoDB" talk to them inside the loop).

Hot-path rows: JWT decode (signature + claims; the revocation marks are checked in the rate
limiter's round trip, not here), for a token this process has not seen yet and for one it
has verified before (``JWTManager`` remembers verified tokens per process), and API-key
verify from the per-process cache. The password
rows use the default argon2id cost (``ARGON2_TIME_COST``, ``ARGON2_MEMORY_COST``,
``ARGON2_PARALLELISM``): that is the CPU a login or a registration costs the worker.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import harness
from bench.harness import Stack, say


@dataclass
class Timing:
    name: str
    note: str
    wall_us: list[float]
    cpu_us: float
    hot: bool

    @property
    def median_us(self) -> float:
        return statistics.median(self.wall_us)

    @property
    def best_us(self) -> float:
        return min(self.wall_us)


def bench(
    name: str,
    operation: Callable[[], Any],
    args: argparse.Namespace,
    note: str = "",
    hot: bool = False,
) -> Timing:
    operation()  # warm: caches, connections, lazy imports
    number = 1
    while True:  # timeit's autorange: the smallest batch that lasts min_time
        started = time.perf_counter()
        for _ in range(number):
            operation()
        if time.perf_counter() - started >= args.min_time:
            break
        number *= 2 if number < 8 else 4
    walls = []
    cpu_total = 0.0
    for _ in range(args.repeat):
        cpu_started = time.process_time()
        started = time.perf_counter()
        for _ in range(number):
            operation()
        walls.append((time.perf_counter() - started) / number * 1e6)
        cpu_total += time.process_time() - cpu_started
    timing = Timing(name, note, walls, cpu_total / (number * args.repeat) * 1e6, hot)
    say(f"{name}: {timing.median_us:,.1f} us/op")
    return timing


def first_sight(manager: Any, token: str) -> Any:
    """Decode ``token`` as if this process had never seen it: JWTManager remembers verified
    tokens (``_verified``), and the full verification is what a new token costs."""
    remembered = getattr(manager, "_verified", None)
    if remembered is not None:
        remembered.clear()
    return manager.decode(token)


def asymmetric_keys() -> dict[str, str]:
    """PEM private keys for the asymmetric algorithms JWT_ALGORITHM accepts."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    keys = {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }
    return {
        alg: key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        for alg, key in keys.items()
    }


def run(stack: Stack, args: argparse.Namespace) -> tuple[list[Timing], dict[str, Any]]:
    from config.loader import SettingsLoader
    from core.errors import Unauthorized
    from core.managers.api_keys import ApiKeyManager
    from core.managers.database.mongo import MongoStore
    from core.managers.jwt import JWTManager
    from core.managers.metrics import MetricsManager
    from core.managers.rate_limiter import RateLimiter, Revocation
    from core.managers.redis import RedisManager
    from modules.auth.passwords import PasswordHasher
    from modules.auth.settings import AuthSettings

    env = stack.app_env(APP_ENV="dev")
    loaded = SettingsLoader(env).load(None, modules={"auth": AuthSettings})
    settings, auth = loaded.settings, loaded.settings_of(AuthSettings)
    redis_manager = RedisManager(settings)
    mongo = MongoStore(settings)
    jwt = JWTManager(settings, redis_manager)
    api_keys = ApiKeyManager(settings, mongo, redis_manager)
    mongo.ensure_indexes()
    limiter = RateLimiter(settings, redis_manager, MetricsManager(settings))
    hasher = PasswordHasher(auth)
    timings: list[Timing] = []
    try:
        pair = jwt.issue_pair("64b000000000000000000001", ["user"], username="bench")
        access = pair.access_token
        timings.append(
            bench(
                f"JWT decode, new token ({settings.jwt_algorithm}: signature + claims)",
                lambda: first_sight(jwt, access),
                args,
                "a token's first request in this process",
                hot=True,
            )
        )
        timings.append(
            bench(
                "JWT decode, token seen before (verified-token cache)",
                lambda: jwt.decode(access),
                args,
                "the token's later requests",
                hot=True,
            )
        )
        timings.append(
            bench(
                "JWT verify + revocation check (+ Redis EXISTS)",
                lambda: jwt.verify(access),
                args,
                "Socket.IO connect",
            )
        )
        timings.append(
            bench(
                f"JWT issue access + refresh ({settings.jwt_algorithm})",
                lambda: jwt.issue_pair("64b000000000000000000001", ["user"], username="bench"),
                args,
                "login, refresh",
            )
        )
        for algorithm, pem in asymmetric_keys().items():
            other = JWTManager(
                SettingsLoader({**env, "JWT_ALGORITHM": algorithm, "JWT_PRIVATE_KEY": pem})
                .load(None)
                .settings,
                redis_manager,
            )
            token = other.issue_pair("64b000000000000000000001", ["user"]).access_token
            timings.append(
                bench(
                    f"JWT decode, new token ({algorithm})",
                    lambda other=other, token=token: first_sight(other, token),  # type: ignore[misc]
                    args,
                    "if JWT_ALGORITHM is set to it",
                )
            )

        created = api_keys.create("bench", ["bench"])
        key = created["key"]
        api_keys.verify(key, check_revoked=False)  # fills the cache (and the once-a-minute touch)
        timings.append(
            bench(
                "API-key verify (process cache hit)",
                lambda: api_keys.verify(key, check_revoked=False),
                args,
                "per API-key request",
                hot=True,
            )
        )

        def cold_verify() -> None:
            api_keys._cache.clear()
            api_keys.verify(key, check_revoked=False)

        timings.append(
            bench(
                "API-key verify (cache miss: + MongoDB find_one)",
                cold_verify,
                args,
                f"once per key per {settings.api_key_cache_ttl}s",
            )
        )
        claims = jwt.decode(access)
        revocations = [
            Revocation(k, lambda: Unauthorized("revoked")) for k in jwt.revocation_keys(claims)
        ]
        buckets = [
            limiter.bucket("ip", "127.0.0.1"),
            limiter.bucket("user", claims["sub"]),
        ]
        timings.append(
            bench(
                "rate limiter: 2 revocation keys, ip + user, 4 limits (+ Redis EVALSHA)",
                lambda: limiter.check(buckets, revocations),
                args,
                "the request's one round trip",
                hot=True,
            )
        )

        password = "correct-horse-battery-staple"
        stored = hasher.hash(password)
        timings.append(
            bench("password hash (argon2id)", lambda: hasher.hash(password), args, "register")
        )
        timings.append(
            bench(
                "password verify (argon2id)",
                lambda: hasher.verify(stored, password),
                args,
                "login",
            )
        )
    finally:
        limiter.close()
        mongo.close()
        redis_manager.close()
    cost = {
        "jwt_algorithm": settings.jwt_algorithm,
        "argon2_time_cost": auth.argon2_time_cost,
        "argon2_memory_cost_kib": auth.argon2_memory_cost,
        "argon2_parallelism": auth.argon2_parallelism,
        "api_key_cache_ttl": settings.api_key_cache_ttl,
    }
    return timings, cost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds per batch")
    parser.add_argument("--repeat", type=int, default=5, help="batches per operation")
    args = harness.parse_args(parser, argv, {"min_time": 0.01, "repeat": 1})
    args.load_before = harness.load_average()

    with Stack(("mongodb", "redis")) as stack:
        timings, cost = run(stack, args)

    rows = [
        [
            ("* " if t.hot else "") + t.name,
            t.median_us,
            t.best_us,
            t.cpu_us,
            1e6 / t.median_us,
            t.note,
        ]
        for t in timings
    ]
    headers = ["operation (* = every request)", "us/op", "best us/op", "CPU us/op", "ops/s", "when"]
    hash_t = next(t for t in timings if t.name.startswith("password hash"))
    verify_t = next(t for t in timings if t.name.startswith("password verify"))
    jwt_t = timings[0]
    jwt_seen = timings[1]
    key_t = next(t for t in timings if t.name.startswith("API-key verify (process"))
    summary = (
        f"auth_primitives: JWT decode {jwt_t.median_us:.1f} us (new token), "
        f"{jwt_seen.median_us:.1f} us (seen before), API-key verify (cached) "
        f"{key_t.median_us:.1f} us, argon2id (t={cost['argon2_time_cost']}, "
        f"m={cost['argon2_memory_cost_kib']} KiB, p={cost['argon2_parallelism']}) hash "
        f"{hash_t.median_us / 1000:.1f} ms, verify {verify_t.median_us / 1000:.1f} ms"
    )
    text = "\n".join(
        [
            harness.machine_line(),
            f"timeit-style: batches of >= {args.min_time:g}s, {args.repeat} batches per "
            f"operation, median and best; CPU = process time per operation; settings: "
            + ", ".join(f"{k}={v}" for k, v in cost.items())
            + f"; load average before: {args.load_before}",
            "",
            harness.table(headers, rows),
            "",
            summary,
        ]
    )
    print(text, flush=True)
    data = {
        "settings": {**vars(args), **cost},
        "operations": [
            {
                "name": t.name,
                "hot_path": t.hot,
                "median_us": t.median_us,
                "best_us": t.best_us,
                "cpu_us": t.cpu_us,
                "runs_us": t.wall_us,
                "when": t.note,
            }
            for t in timings
        ],
        "summary": summary,
    }
    path = harness.save("auth_primitives", text, data, args.smoke)
    say(f"results in {path} (and .json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
