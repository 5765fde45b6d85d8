"""Shared fixtures: a tiny project (demo source, lake, registries) in a temporary folder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mm_assets.settings import Settings

TINY_END = dt.date(2026, 6, 30)
REPO = Path(__file__).resolve().parents[1]
# where a setting left at its default writes when a test runs in the checkout (the shipped settings' stores)
DEFAULT_STORES = ("data/production.db", "data/registry.db", "data/warehouse.db", "data/source.db", "data/lake")


def _stamps() -> dict[str, tuple[int, int] | None]:
    out = {}
    for name in DEFAULT_STORES:
        path = REPO / name
        out[name] = (path.stat().st_mtime_ns, path.stat().st_size) if path.exists() else None
    return out


@pytest.fixture(scope="session", autouse=True)
def no_store_written_in_the_checkout():
    """A test's settings that leave a store at its default (``data/production.db``, relative to the working
    directory) share it with every other such test, and with the user's own demo: champions of one test leak
    into the next. Fails the session when any test wrote one there."""
    before = _stamps()
    yield
    changed = [name for name, stamp in _stamps().items() if stamp != before[name]]
    assert not changed, (f"tests wrote {', '.join(changed)} in the checkout: a store left at its default "
                         "setting (give it a path under the test's tmp_path)")


def tiny_settings(root: Path, **overrides) -> Settings:
    """Settings for a small project rooted at ``root`` (horizon 14 keeps training fast)."""
    data = {
        "source": {"url": f"sqlite:///{root}/source.db"},
        "storage": {
            "lake": str(root / "lake"),
            "registry": f"sqlite:///{root}/registry.db",
            "warehouse": f"sqlite:///{root}/warehouse.db",
            "production_registry": f"sqlite:///{root}/production.db",
        },
        "horizon": 14,
        "ingest": {"start_date": "2025-12-01"},
        "runner": {"max_concurrency": 2, "series_per_task": 5, "mini_batch_timeout_s": 60},
        "schedule": {"partitions_per_run": 2},
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    return Settings.model_validate(data)


@pytest.fixture
def tiny_project(tmp_path, monkeypatch):
    """A demo source of 3 stores x 4 items x 212 days, settings pointing into tmp_path."""
    from mm_assets.demo.generator import DemoSpec, write_source

    monkeypatch.chdir(tmp_path)
    spec = DemoSpec(stores=3, items=4, days=212, end_date=TINY_END, seed=7)
    settings = tiny_settings(tmp_path)
    rows = write_source(spec, url=settings.source.url)
    assert rows > 0
    return settings, spec


# ---- a real PostgreSQL server on loopback (Debian `postgresql`; make test installs it) ------------------------
def _pg_bin(name: str) -> str:
    import glob
    import shutil

    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or ([shutil.which(name)] if shutil.which(name) else [])
    if not found:
        pytest.fail(
            f"PostgreSQL's {name} is not installed: `apt-get install postgresql` (make test does) to run the "
            "`postgres` tests; they are never skipped"
        )
    return found[-1]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """Start a throwaway PostgreSQL cluster on 127.0.0.1 for this test session; yields its base URL."""
    import os
    import pwd
    import shutil
    import subprocess
    import tempfile
    import time
    from pathlib import Path

    # not under pytest's tmp dir: that one is private to root, and the server runs as the postgres user
    root = Path(tempfile.mkdtemp(prefix="mm-assets-pg-"))
    data, sockets = root / "data", root / "sock"
    data.mkdir()
    sockets.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres system user
        user = pwd.getpwnam("postgres")
        for path in (root, data, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run([*prefix, _pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*prefix, _pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w",
                    "start"], check=True, capture_output=True)
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{port}"
    import sqlalchemy as sa

    deadline = time.time() + 30
    while True:
        try:
            with sa.create_engine(f"{url}/postgres").connect():
                break
        except sa.exc.OperationalError:
            if time.time() > deadline:
                raise
            time.sleep(0.3)
    try:
        yield url
    finally:
        subprocess.run([*prefix, _pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_db(postgres_server, request):
    """A fresh database on the session's server; yields its SQLAlchemy URL."""
    import re
    import uuid

    import sqlalchemy as sa

    name = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:6]
    admin = sa.create_engine(f"{postgres_server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    yield f"{postgres_server}/{name}"
