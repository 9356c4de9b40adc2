#!/usr/bin/env python3
"""Run, test and benchmark the ``bjet_api_sync`` Odoo 18 addon.

Standard library only, so it works before anything else is installed.  Odoo 18
comes from provision.py: the one ODOO_PYTHON (else this python3) imports, else a
cached build made on demand.  Subcommands::

    test   the harness's unit tests, lint, then install the addon with tests
           enabled in a fresh database and judge Odoo's log, then check that
           the server survives its own restart; the last line printed is
           "N passed, N failed"
    run    serve a demo database on http://127.0.0.1:$PORT (default 8069),
           threaded, or with WORKERS=N in multi-process mode
    bench  run every bench/*.py script against a freshly started server
    chaos  scripts/chaos.py against a multi-process server that it SIGKILLs and
           restarts on request, as it restarts its PostgreSQL cluster; the whole
           run is bounded by 10 minutes
    lint   ruff check, then OCA's pylint-odoo checks (.pylintrc)
    pot    write i18n/bjet_api_sync.pot from the code with Odoo's exporter

PostgreSQL: when any of PGHOST/PGPORT/PGUSER/PGPASSWORD is set, that server is
used as is.  Otherwise the harness runs its own cluster, reachable only through
a unix socket in a private temporary directory (trust authentication is then
safe): a throwaway one for ``test`` and ``bench``, a persistent one under
``.run/pg`` for ``run`` (and for ``test``/``bench`` with KEEP_DB=1, so a kept
database can be opened later with ``DB=<name> make run``); as root, when the
``postgres`` user cannot reach the checkout, ``.run/pg`` links to a directory
of that user's home.

Environment knobs: TEST_TAGS (default /bjet_api_sync), KEEP_DB=1, PORT, DB, BENCH,
WORKERS, CHAOS_SEED (the chaos run's random seed), EXTRA_ADDONS_PATH (comma separated,
appended to the addons path), and ODOO_PYTHON, ODOO_SRC, ODOO_REF, XDG_CACHE_HOME (see
provision.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hutil import MODULE, REPO, HarnessError, run_quiet, say
from logscan import LOG_LINE, LogScanner, TestVerdict
from provision import (
    CHROMIUM,
    LINT_REQUIREMENTS,
    POSTGRES,
    OdooInstall,
    ensure_addon_requirements,
    ensure_requirements,
    ensure_system_packages,
    find_odoo,
)

RUN_DIR = REPO / ".run"  # gitignored: logs, persistent cluster, filestore
PYLINTRC = REPO / ".pylintrc"
POT_FILE = REPO / "i18n" / f"{MODULE}.pot"
PG_ENV_KEYS = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD")
# Odoo refuses to connect as "postgres", so our own clusters get this superuser.
PG_ROLE = "odoo"
DB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # Odoo's own rule
# Installed in `make run`'s database: the demo configurations exchange contacts,
# which this app shows (the addon itself needs only base).
RUN_APPS = ("contacts",)


# --------------------------------------------------------------------------
# Signals: Ctrl-C / SIGTERM interrupt the work, but never the cleanup.
# --------------------------------------------------------------------------

_shielded = False


def _on_signal(signum: int, _frame: object) -> None:
    if _shielded:
        say(f"signal {signum} ignored: cleaning up, please wait")
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def session() -> Iterator[contextlib.ExitStack]:
    """ExitStack whose callbacks (stop Odoo, drop db, stop cluster) run shielded.

    Without the shield a second Ctrl-C, very natural while Odoo shuts down,
    would abort the cleanup and leave a cluster running or a temp dir behind.
    """
    global _shielded
    with contextlib.ExitStack() as stack:
        try:
            yield stack
        finally:
            _shielded = True
    _shielded = False


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def free_port() -> int:
    # The kernel picks an unused port; the tiny race until Odoo or PostgreSQL
    # binds it is acceptable for a dev/CI harness.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like Odoo's server: connections of a previous run lingering in
        # TIME_WAIT must not make the port look busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def db_name_from_env(name: str, default: str) -> str:
    value = os.environ.get(name) or default
    if not DB_NAME_RE.match(value):
        raise HarnessError(f"{name}={value!r} is not a valid database name")
    return value


def fresh_db_name(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------
# Workspace
# --------------------------------------------------------------------------


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    """Temp dir with the addons dir and an empty Odoo config file.

    The repository root *is* the addon but its directory may have any name
    (CI clones elsewhere), while Odoo needs an addons dir containing a folder
    named like the module: a symlink provides it.  The empty config file keeps
    a developer's ~/.odoorc out of the runs.
    """
    with tempfile.TemporaryDirectory(prefix="bjet_harness_") as tmp:
        path = Path(tmp)
        (path / "addons").mkdir()
        (path / "addons" / MODULE).symlink_to(REPO, target_is_directory=True)
        (path / "odoo.conf").write_text("[options]\n")
        yield path


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------


@dataclass
class PgServer:
    env: dict[str, str]  # libpq variables to add to child environments
    label: str
    cluster: PgCluster | None = None  # when the harness runs it (it can restart it)


def pg_from_environment() -> PgServer | None:
    given = {key: os.environ[key] for key in PG_ENV_KEYS if os.environ.get(key)}
    if not given:
        return None
    shown = " ".join(f"{k}={v}" for k, v in given.items() if k != "PGPASSWORD")
    return PgServer({}, f"existing server from the environment ({shown or 'PGPASSWORD'})")


def pg_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    # Debian/Ubuntu keep the server binaries off PATH: take the newest version.
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if candidates:
        return str(candidates[-1])
    raise HarnessError(
        f"PostgreSQL's {name} was not found: install the PostgreSQL server (e.g. apt-get install "
        "postgresql) or point PGHOST/PGPORT/PGUSER/PGPASSWORD at an existing server"
    )


def _utf8_locale() -> str:
    # A C.UTF-8 ctype keeps upper()/ILIKE correct on non-ASCII text while
    # staying independent of the machine's installed locales.
    try:
        listed = run_quiet(["locale", "-a"]).stdout
    except OSError:
        return "C"
    return "C.UTF-8" if {"c.utf8", "c.utf-8"} & set(listed.lower().split()) else "C"


def cluster_owner() -> pwd.struct_passwd | None:
    """The user the harness's clusters run as: None for the current user; as root,
    ``postgres``, since PostgreSQL refuses to run as root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise HarnessError(
            "running as root, but PostgreSQL refuses to run as root and there is no "
            "'postgres' system user to run it as: create one (useradd --system postgres) "
            "or set PGHOST/PGPORT/PGUSER/PGPASSWORD to use an existing server"
        ) from None


def as_owner(owner: pwd.struct_passwd | None, *cmd: str) -> list[str]:
    return list(cmd) if owner is None else ["runuser", "-u", owner.pw_name, "--", *cmd]


def new_cluster_root(parent: str | None = None) -> Path:
    """A new private directory for a cluster, in ``parent`` (default: the temporary one)."""
    return Path(tempfile.mkdtemp(prefix="bjet_pgdata_", dir=parent))


def kept_cluster_root(run_dir: Path, owner: pwd.struct_passwd | None) -> Path:
    """The kept cluster's directory: ``run_dir/pg``, or where it links to.

    As root the server runs as ``owner``, which cannot reach a checkout inside a
    private directory (a home of mode 700): the cluster then lives in a new
    directory of ``owner``'s home, persistent as PostgreSQL's own clusters there,
    and ``run_dir/pg`` is a link to it.
    """
    link = run_dir / "pg"
    run_dir.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        if link.exists():
            return link.resolve()  # the server's user may not pass through the link's path
        say(f"{link} links to {os.readlink(link)}, which is gone: starting a new cluster")
        link.unlink()
    if owner is None or run_quiet(as_owner(owner, "test", "-x", str(run_dir))).returncode == 0:
        return link
    home = Path(owner.pw_dir)
    if not home.is_dir() or home.stat().st_uid != owner.pw_uid:
        raise HarnessError(
            f"the {owner.pw_name} user cannot reach {link} (a parent directory is not searchable "
            f"by it) and has no home directory of its own ({home}) to keep the cluster in: move "
            "the checkout, give that user its home, or set PGHOST/PGPORT/PGUSER"
        )
    if link.is_dir():
        try:
            link.rmdir()  # left empty by an earlier harness that could not start there
        except OSError:
            raise HarnessError(
                f"the {owner.pw_name} user cannot reach {link}, which is not empty: move it away"
            ) from None
    root = new_cluster_root(str(home))
    link.symlink_to(root, target_is_directory=True)
    say(f"the {owner.pw_name} user cannot reach {run_dir}: the kept cluster lives in {root}")
    return root


class PgCluster:
    """A cluster owned by the harness, in ``root`` (data/ + server.log).

    PostgreSQL refuses to run as root, so as root every server command runs
    as the ``postgres`` system user, which must own the directories.
    """

    def __init__(self, root: Path, *, throwaway: bool):
        self.root = root
        self.data = root / "data"
        self.logfile = root / "server.log"
        self.throwaway = throwaway
        self.socket_dir: Path | None = None
        self.started = False  # False when we found it already running
        self.owner = cluster_owner()

    def _cmd(self, *cmd: str) -> list[str]:
        return as_owner(self.owner, *cmd)

    def _own(self, path: Path) -> None:
        path.chmod(0o700)
        if self.owner is not None:
            os.chown(path, self.owner.pw_uid, self.owner.pw_gid)

    def _run(self, *cmd: str, what: str) -> None:
        proc = run_quiet(self._cmd(*cmd))
        if proc.returncode != 0:
            output = proc.stdout + proc.stderr + tail(self.logfile)
            raise HarnessError(f"{what} failed ({proc.returncode}):\n{output}")

    def _running_instance(self) -> PgServer | None:
        """Reuse a server already running on this data dir (e.g. a second `make run`)."""
        status = run_quiet(self._cmd(pg_binary("pg_ctl"), "status", "-D", str(self.data)))
        if status.returncode != 0:
            return None
        # postmaster.pid lines: pid, datadir, start time, port, socket dir, ...
        lines = (self.data / "postmaster.pid").read_text().splitlines()
        port, socket_dir = lines[3].strip(), lines[4].strip()
        say(f"reusing the PostgreSQL cluster already running in {self.data}")
        return PgServer(
            {"PGHOST": socket_dir, "PGPORT": port, "PGUSER": PG_ROLE},
            f"running cluster {self.data}",
        )

    def start(self, *, fast: bool) -> PgServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self._own(self.root)
        if self.owner is not None:
            reach = run_quiet(self._cmd("test", "-w", str(self.root)))
            if reach.returncode != 0:
                raise HarnessError(
                    f"the postgres user cannot reach {self.root} (a parent directory is not "
                    "searchable by it); move the checkout or set PGHOST/PGPORT/PGUSER"
                )
        if not (self.data / "PG_VERSION").exists():
            say(f"creating PostgreSQL cluster in {self.data}")
            initdb = [pg_binary("initdb"), "-D", str(self.data), "-U", PG_ROLE, "-A", "trust"]
            initdb += ["-E", "UTF8", f"--locale={_utf8_locale()}"]
            if self.throwaway:
                initdb.append("--no-sync")
            self._run(*initdb, what="initdb")
        running = self._running_instance()
        if running:
            return running
        # Unix socket only, in a short private dir: unix socket paths are
        # limited to ~107 bytes, and 0700 keeps other local users out.
        tmp_root = tempfile.gettempdir()
        self.socket_dir = Path(
            tempfile.mkdtemp(prefix="bjet_pg_", dir=tmp_root if len(tmp_root) < 60 else "/tmp")
        )
        self._own(self.socket_dir)
        port = free_port()
        options = f"-p {port} -k {self.socket_dir} -c listen_addresses=''"
        if fast:
            # Throwaway test data: durability only costs time.
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        start = [pg_binary("pg_ctl"), "start", "-D", str(self.data), "-l", str(self.logfile)]
        self._run(*start, "-w", "-t", "60", "-o", options, what="starting PostgreSQL")
        self.started = True
        return PgServer(
            {"PGHOST": str(self.socket_dir), "PGPORT": str(port), "PGUSER": PG_ROLE},
            f"{'throwaway' if self.throwaway else 'persistent'} cluster {self.data}",
        )

    def restart(self) -> float:
        """Stop (fast: every session is terminated) and start again with the same
        options; the seconds it took."""
        if not self.started:
            raise HarnessError(f"the cluster in {self.data} was not started by this harness")
        began = time.monotonic()
        # The log file, as at the start: else the server would keep our output pipe open.
        self._run(pg_binary("pg_ctl"), "restart", "-D", str(self.data), "-l", str(self.logfile),
                  "-m", "fast", "-w", "-t", "60", what="restarting PostgreSQL")
        return time.monotonic() - began

    def stop(self) -> None:
        if self.started:
            ctl = [pg_binary("pg_ctl"), "stop", "-D", str(self.data), "-w", "-t", "60"]
            for mode in ("fast", "immediate"):
                if run_quiet(self._cmd(*ctl, "-m", mode)).returncode == 0:
                    break
            else:
                say(f"could not stop PostgreSQL in {self.data}, see {self.logfile}")
            self.started = False
        if self.socket_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
        if self.throwaway:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres(*, persistent: bool, fast: bool) -> Iterator[PgServer]:
    """The server named by PG* variables, else a cluster of our own."""
    given = pg_from_environment()
    if given:
        say(f"PostgreSQL: {given.label}")
        yield given
        return
    root = kept_cluster_root(RUN_DIR, cluster_owner()) if persistent else new_cluster_root()
    cluster = PgCluster(root, throwaway=not persistent)
    try:
        server = cluster.start(fast=fast)
        server.cluster = cluster if cluster.started else None
        say(f"PostgreSQL: {server.label}")
        yield server
    finally:
        cluster.stop()


_SQL_SNIPPET = """
import json, sys, psycopg2
dbname, query, params = json.loads(sys.argv[1])
conn = psycopg2.connect(dbname=dbname)
conn.autocommit = True
with conn.cursor() as cr:
    cr.execute(query, params)
    print(json.dumps(cr.fetchall() if cr.description else []))
conn.close()
"""


def run_sql(
    setup: OdooSetup, query: str, params: list | None = None, dbname: str = "postgres"
) -> list:
    # psycopg2 comes with Odoo: running it in a child keeps this script
    # stdlib-only and needs no psql client next to a remote server.
    args = json.dumps([dbname, query, params or []])
    proc = run_quiet([setup.odoo.python, "-c", _SQL_SNIPPET, args], env=setup.env)
    if proc.returncode != 0:
        raise HarnessError(f"SQL on database {dbname!r} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def module_state(setup: OdooSetup, db: str) -> str | None:
    """State of our module in ``db``; None when the db or the module is not there yet."""
    if not run_sql(setup, "SELECT 1 FROM pg_database WHERE datname = %s", [db]):
        return None
    # The db may exist but be empty, e.g. when a first initialisation crashed.
    if not run_sql(setup, "SELECT to_regclass('ir_module_module') IS NOT NULL", dbname=db)[0][0]:
        return None
    rows = run_sql(setup, "SELECT state FROM ir_module_module WHERE name = %s", [MODULE], db)
    return rows[0][0] if rows else None


def drop_database(setup: OdooSetup, db: str) -> None:
    # Names are generated or validated against DB_NAME_RE, so quoting is enough.
    try:
        run_sql(setup, f'DROP DATABASE IF EXISTS "{db}"')
        say(f"dropped database {db}")
    except HarnessError as exc:
        say(f"could not drop database {db}: {exc}")


# --------------------------------------------------------------------------
# Odoo processes
# --------------------------------------------------------------------------


@dataclass
class OdooSetup:
    """Everything an Odoo command line needs, shared by all subcommands."""

    odoo: OdooInstall
    addons_path: str
    data_dir: Path
    config: Path
    env: dict[str, str]

    def command(self, db: str, *args: str) -> list[str]:
        return [
            self.odoo.python,
            # The real entry point, not `-m odoo`: Odoo restarts itself
            # (SIGHUP, limits reached) by re-executing its sys.argv.
            self.odoo.entry_point,
            f"--config={self.config}",
            f"--addons-path={self.addons_path}",
            f"--data-dir={self.data_dir}",
            # Alone, without --db-filter: then Odoo does not list the server's
            # databases (a new PostgreSQL connection) on every session-less
            # request, which every API call is.
            f"--database={db}",
            "--http-interface=127.0.0.1",
            *args,
        ]


def odoo_setup(odoo: OdooInstall, work: Path, data_dir: Path, pg: PgServer) -> OdooSetup:
    paths = [str(work / "addons"), *odoo.addons_paths]
    paths += [p for p in os.environ.get("EXTRA_ADDONS_PATH", "").split(",") if p.strip()]
    env = {**os.environ, **pg.env, "PYTHONUNBUFFERED": "1"}
    # Odoo restarts by executing its interpreter's base name, which Python then
    # finds on PATH: the interpreter's own directory must come first there, as
    # when a virtual environment is activated, or the restart loses it.
    env["PATH"] = os.pathsep.join([str(odoo.bin_dir), env.get("PATH", "")])
    # Colours would break log parsing; Odoo only colours a tty unless told to.
    env.pop("ODOO_PY_COLORS", None)
    data_dir.mkdir(parents=True, exist_ok=True)
    return OdooSetup(odoo, ",".join(paths), data_dir, work / "odoo.conf", env)


class OdooProcess:
    """An Odoo child whose output goes to a log file, the terminal if ``echo``,
    and line by line to ``on_line``.

    It runs in its own session so that terminal signals reach only us: we
    stop it deliberately, then kill its whole process group, which also takes
    out any Chromium left over by browser tests.
    """

    def __init__(
        self,
        cmd: list[str],
        env: dict[str, str],
        log_path: Path,
        *,
        echo: bool = True,
        append: bool = False,
        on_line: Callable[[str], None] | None = None,
    ):
        self.cmd, self.env, self.log_path = cmd, env, log_path
        self.echo, self.append, self.on_line = echo, append, on_line
        self.proc: subprocess.Popen[str] | None = None
        self.reader: threading.Thread | None = None

    def __enter__(self) -> OdooProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("a" if self.append else "w", encoding="utf-8")
        log.write("$ " + " ".join(self.cmd) + "\n")
        self.proc = subprocess.Popen(
            self.cmd,
            env=self.env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._pump, args=(log,), daemon=True)
        self.reader.start()
        return self

    def _pump(self, log) -> None:
        assert self.proc and self.proc.stdout
        with log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                if self.echo:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                if self.on_line:
                    self.on_line(line.rstrip("\n"))

    def alive(self) -> bool:
        return bool(self.proc) and self.proc.poll() is None

    def wait(self) -> int:
        assert self.proc and self.reader
        rc = self.proc.wait()
        # Children left behind (a Chromium that Odoo gave up on) would keep the
        # output pipe open, and the reader waiting for its end, forever.
        self._signal_group(signal.SIGKILL)
        self.reader.join()
        return rc

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        if not self.proc:
            return
        if self.proc.poll() is None:
            # Odoo: 1st SIGINT = graceful shutdown (but a running test suite
            # only notices at its end), 2nd = immediate exit, then SIGKILL.
            for sig, grace in ((signal.SIGINT, 20), (signal.SIGINT, 5), (signal.SIGKILL, 5)):
                self._signal_group(sig)
                try:
                    self.proc.wait(grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._signal_group(signal.SIGKILL)  # stragglers such as Chromium
        if self.reader:
            self.reader.join(5)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def odoo_once(setup: OdooSetup, db: str, log_path: Path, what: str, *args: str,
              echo: bool, append: bool = False) -> None:
    """Run an Odoo command that stops by itself (no HTTP, no cron); fail with ``what``."""
    cmd = setup.command(db, *args, "--stop-after-init", "--max-cron-threads=0", "--no-http")
    with OdooProcess(cmd, setup.env, log_path, echo=echo, append=append) as odoo:
        rc = odoo.wait()
    if rc != 0:
        raise HarnessError(
            f"Odoo failed to {what} (exit code {rc}), see {log_path}"
            + ("" if echo else "\n" + tail(log_path))
        )


def prepare_database(
    setup: OdooSetup, db: str, log_path: Path, *, echo: bool, apps: tuple[str, ...] = ()
) -> None:
    """Install the module with demo data in a new ``db``, or update it; install
    ``apps`` (other modules) in it when they are not yet."""
    installed = module_state(setup, db) == "installed"
    # Odoo skips the modules to install that already are.
    installs = ",".join(apps if installed else (MODULE, *apps))
    action = (["-u", MODULE] if installed else []) + (["-i", installs] if installs else [])
    say(
        f"{'updating' if installed else 'installing'} {MODULE} in database {db}"
        f"{''.join(f' with {app}' for app in apps)} (log: {log_path})"
    )
    odoo_once(setup, db, log_path, f"prepare database {db}", *action, echo=echo)


def wait_http(odoo: OdooProcess, url: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not odoo.alive():
            raise HarnessError(f"Odoo exited before answering {url}, see {odoo.log_path}")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise HarnessError(f"Odoo did not answer {url} within {timeout:.0f}s")


def server_mode(workers: int, gevent_port: int) -> list[str]:
    """Threaded (one process) by default; with workers, Odoo's production shape:
    prefork HTTP workers, 2 cron workers, and the gevent process for the bus."""
    if not workers:
        return ["--max-cron-threads=2"]
    return [f"--workers={workers}", "--max-cron-threads=2", f"--gevent-port={gevent_port}"]


def serve(
    stack: contextlib.ExitStack,
    setup: OdooSetup,
    db: str,
    port: int,
    log_path: Path,
    *,
    echo: bool,
    workers: int = 0,
    on_line: Callable[[str], None] | None = None,
    options: tuple[str, ...] = (),
) -> tuple[OdooProcess, str]:
    """Start an Odoo server (crons on) and return it with its base URL once it answers."""
    gevent_port = free_port()
    cmd = setup.command(db, f"--http-port={port}", *server_mode(workers, gevent_port), *options)
    odoo = stack.enter_context(
        OdooProcess(cmd, setup.env, log_path, echo=echo, append=True, on_line=on_line)
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(odoo, f"{url}/web/login")
    if workers:
        # The bus process: it dies alone (the server goes on) when gevent is broken.
        wait_http(odoo, f"http://127.0.0.1:{gevent_port}/web/login", timeout=60)
    return odoo, url


# Logged once per start by odoo/cli/server.py (report_configuration).
START_LINE = re.compile(r" INFO \S+ odoo: Odoo version ")


def restart_check(setup: OdooSetup, db: str, log_path: Path, workers: int) -> None:
    """Make a served Odoo restart itself as it does when a request exceeds its time
    limit (the server sends itself SIGHUP, then re-executes sys.argv) and check
    that the same process answers again."""
    starts: list[str] = []

    def count_starts(line: str) -> None:
        if START_LINE.search(line):
            starts.append(line)

    with session() as stack:
        odoo, url = serve(
            stack,
            setup,
            db,
            free_port(),
            log_path,
            echo=False,
            workers=workers,
            on_line=count_starts,
        )
        assert odoo.proc
        os.kill(odoo.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 120
        while len(starts) < 2:
            if not odoo.alive():
                raise HarnessError(f"Odoo died instead of restarting:\n{tail(log_path, 15)}")
            if time.monotonic() > deadline:
                raise HarnessError("Odoo did not restart within 120s after SIGHUP")
            time.sleep(0.2)
        wait_http(odoo, f"{url}/web/login", timeout=120)


# --------------------------------------------------------------------------
# Subcommands
# --------------------------------------------------------------------------


def lint(odoo: OdooInstall) -> None:
    ensure_requirements(odoo, LINT_REQUIREMENTS, "the linters")
    say("ruff check .")
    if subprocess.run([odoo.python, "-m", "ruff", "check", "."], cwd=REPO).returncode != 0:
        raise HarnessError("ruff check reported problems")
    say(f"pylint-odoo ({PYLINTRC.name}: OCA's checks)")
    # From an addons dir, as OCA runs it: the module is named after its folder.
    with workspace() as work:
        pylint = [odoo.python, "-m", "pylint", f"--rcfile={PYLINTRC}", MODULE]
        if subprocess.run(pylint, cwd=work / "addons").returncode != 0:
            raise HarnessError(f"pylint-odoo reported problems (config: {PYLINTRC.name})")


def runtime_needs(*, browser: bool) -> list:
    needs = [] if pg_from_environment() else [POSTGRES]
    return needs + ([CHROMIUM] if browser else [])


def prepared_odoo(*, browser: bool) -> OdooInstall:
    odoo = find_odoo()
    say(f"Odoo {odoo.version}: {odoo.origin}")
    ensure_addon_requirements(odoo)
    ensure_system_packages(runtime_needs(browser=browser), "running Odoo and its tests")
    return odoo


def cmd_lint(_args: argparse.Namespace) -> int:
    lint(prepared_odoo(browser=False))
    return 0


def cmd_pot(_args: argparse.Namespace) -> int:
    """Export the translation template as tests/test_i18n.py does: the addon installed
    without demo data (as `make test` installs it) in a throwaway database."""
    odoo = prepared_odoo(browser=False)
    log_path = RUN_DIR / "pot.log"
    with session() as stack:
        pg = stack.enter_context(postgres(persistent=False, fast=True))
        work = stack.enter_context(workspace())
        setup = odoo_setup(odoo, work, work / "data", pg)
        db = fresh_db_name("bjet_pot")
        stack.callback(drop_database, setup, db)  # LIFO: after Odoo stops
        say(f"installing {MODULE} in database {db} (log: {log_path})")
        odoo_once(setup, db, log_path, f"install {MODULE}", "-i", MODULE, "--without-demo=all",
                  echo=False)
        exported = work / POT_FILE.name
        odoo_once(setup, db, log_path, "export the translation template",
                  f"--i18n-export={exported}", f"--modules={MODULE}", echo=False, append=True)
        # The exporter logs a file it cannot read and goes on without its terms.
        errors = [line for line in log_path.read_text(errors="replace").splitlines()
                  if (match := LOG_LINE.match(line)) and match["level"] in ("ERROR", "CRITICAL")]
        if errors:
            raise HarnessError(f"Odoo logged errors, {POT_FILE.name} is left as it was; see "
                               f"{log_path}; the first:\n{errors[0]}")
        POT_FILE.parent.mkdir(exist_ok=True)
        shutil.copyfile(exported, POT_FILE)
    say(f"wrote {POT_FILE.relative_to(REPO)}")
    return 0


def harness_unit_tests() -> TestVerdict:
    """The harness's own plain-Python tests (scripts/tests), no Odoo needed."""
    say("harness unit tests (scripts/tests)")
    suite = unittest.defaultTestLoader.discover(
        str(REPO / "scripts" / "tests"), top_level_dir=str(REPO / "scripts")
    )
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=1).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    reasons = [f"harness unit tests: {failed} failed"] if failed else []
    passed = result.testsRun - failed - len(result.skipped)
    return TestVerdict(passed, failed, reasons)


def cmd_test(_args: argparse.Namespace) -> int:
    """Exit 0 only for a clean run; always end with the "N passed, N failed" line."""
    started = time.monotonic()
    keep = env_flag("KEEP_DB")
    tags = os.environ.get("TEST_TAGS") or f"/{MODULE}"
    log_path = RUN_DIR / "test.log"
    scanner = LogScanner()
    verdicts = [harness_unit_tests()]
    try:
        odoo = prepared_odoo(browser=True)
        lint(odoo)
        with session() as stack:
            pg = stack.enter_context(postgres(persistent=keep, fast=not keep))
            work = stack.enter_context(workspace())
            setup = odoo_setup(odoo, work, RUN_DIR / "data" if keep else work / "data", pg)
            db = fresh_db_name("bjet_test")
            if not keep:
                stack.callback(drop_database, setup, db)  # LIFO: after Odoo stops
            say(f"database {db}, test tags {tags}, log {log_path}")
            cmd = setup.command(
                db,
                "-i",
                MODULE,
                "--without-demo=all",
                "--test-enable",
                f"--test-tags={tags}",
                "--stop-after-init",
                "--log-level=test",
                "--max-cron-threads=0",
                f"--http-port={free_port()}",
            )
            with OdooProcess(cmd, setup.env, log_path, on_line=scanner.feed) as process:
                returncode = process.wait()
            verdicts.append(scanner.verdict(returncode))
            if scanner.summary_seen:
                say(f"{scanner.run} Odoo test(s) run; log: {log_path}")
            for workers in (0, 2):
                mode = f"{workers} workers" if workers else "threaded"
                say(f"restart check ({mode}): Odoo re-executes itself and answers again")
                try:
                    restart_check(setup, db, RUN_DIR / "restart.log", workers=workers)
                    verdicts.append(TestVerdict(1, 0, []))
                except HarnessError as exc:
                    verdicts.append(TestVerdict(0, 1, [f"restart check ({mode}): {exc}"]))
            if keep:
                say(f"KEEP_DB=1: kept database {db}; open it with: DB={db} make run")
    except HarnessError as exc:
        verdicts.append(TestVerdict(0, 1, [str(exc)]))
    except KeyboardInterrupt:
        verdicts.append(TestVerdict(0, 1, ["interrupted"]))
    if scanner.skipped:
        say(f"{len(scanner.skipped)} test(s) skipped: {', '.join(scanner.skipped)}")
    say(f"took {time.monotonic() - started:.1f}s")
    passed = sum(v.passed for v in verdicts)
    failed = sum(v.failed for v in verdicts)
    # Details (e.g. install instructions) first, so that the one-line reasons
    # sit right above the summary, which must be the very last line.
    headlines = []
    for reason in (reason for v in verdicts for reason in v.reasons):
        headline, _, details = reason.partition("\n")
        if details:
            print(details, flush=True)
        headlines.append(headline)
    for headline in headlines:
        say(f"FAILED: {headline}")
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


def cmd_run(_args: argparse.Namespace) -> int:
    port = int(os.environ.get("PORT") or 8069)
    workers = int(os.environ.get("WORKERS") or 0)
    db = db_name_from_env("DB", "bjet_demo")
    odoo = prepared_odoo(browser=False)
    if not port_is_free(port):
        raise HarnessError(f"port {port} on 127.0.0.1 is busy: choose another with PORT=...")
    log_path = RUN_DIR / "run.log"
    try:
        with session() as stack:
            pg = stack.enter_context(postgres(persistent=True, fast=False))
            work = stack.enter_context(workspace())
            setup = odoo_setup(odoo, work, RUN_DIR / "data", pg)
            prepare_database(setup, db, log_path, echo=True, apps=RUN_APPS)
            server, url = serve(stack, setup, db, port, log_path, echo=True, workers=workers)
            mode = f"{workers} HTTP workers, 2 cron workers" if workers else "threaded"
            say(f"Odoo {odoo.version} is up ({mode}): {url}/web/login  (admin / admin)")
            say("press Ctrl-C to stop")
            returncode = server.wait()
            say(f"Odoo exited by itself with code {returncode}")
            return returncode or 1
    except KeyboardInterrupt:
        say("stopped")
        return 0


def cmd_bench(_args: argparse.Namespace) -> int:
    scripts = sorted(p for p in (REPO / "bench").glob("*.py") if not p.name.startswith("_"))
    # BENCH=inbound runs bench/inbound.py alone.
    wanted = os.environ.get("BENCH")
    if wanted:
        scripts = [p for p in scripts if p.stem == wanted]
    if not scripts:
        say("no bench/*.py scripts yet: nothing to benchmark")
        return 0
    keep = env_flag("KEEP_DB")
    odoo = prepared_odoo(browser=False)
    log_path = RUN_DIR / "bench.log"
    results: list[tuple[str, int, float]] = []
    with session() as stack:
        pg = stack.enter_context(postgres(persistent=keep, fast=False))
        work = stack.enter_context(workspace())
        setup = odoo_setup(odoo, work, RUN_DIR / "data" if keep else work / "data", pg)
        db = fresh_db_name("bjet_bench")
        if not keep:
            stack.callback(drop_database, setup, db)  # LIFO: after Odoo stops
        prepare_database(setup, db, log_path, echo=False)
        server, url = serve(stack, setup, db, free_port(), log_path, echo=False)
        say(f"Odoo {odoo.version} serving {db} at {url} (server log: {log_path})")
        env = {
            **setup.env,
            "BJET_BENCH_URL": url,
            "BJET_BENCH_DB": db,
            "BJET_ADDONS_PATH": setup.addons_path,
        }
        for script in scripts:
            name = script.relative_to(REPO).as_posix()
            say(f"running {name}")
            t0 = time.monotonic()
            returncode = subprocess.run([odoo.python, str(script)], env=env, cwd=REPO).returncode
            results.append((name, returncode, time.monotonic() - t0))
            if not server.alive():
                say(f"the Odoo server died during {name}, see {log_path}")
                results.append(("odoo server", 1, 0.0))
                break
        if keep:
            say(f"KEEP_DB=1: kept database {db}; open it with: DB={db} make run")
    for name, returncode, seconds in results:
        status = "ok  " if returncode == 0 else "FAIL"
        say(f"{status} {name} ({seconds:.1f}s, exit code {returncode})")
    return 0 if all(returncode == 0 for _, returncode, _ in results) else 1


# -- make chaos ---------------------------------------------------------------------

CHAOS_PROGRAM = REPO / "scripts" / "chaos.py"
# The whole run, cluster and install included (not a first build of Odoo), stays
# under ten minutes: the program reports by CHAOS_REPORT_BY, is stopped at
# CHAOS_STOP_AT, and the teardown (SIGKILL, DROP DATABASE, pg_ctl stop) follows.
CHAOS_BOUND = 600
CHAOS_REPORT_BY = CHAOS_BOUND - 60
CHAOS_STOP_AT = CHAOS_BOUND - 35
CHAOS_WORKERS = 4  # HTTP workers: concurrent inbound upserts need concurrent transactions
# The cron workers' watchdog: above Odoo's idle sleep between two polls (60 s plus
# up to 9), which it counts, so that only a delivery run that does not fit after
# that sleep is killed; small enough that a run counting only its own work (a
# share of this limit) after most of that sleep is killed with seconds to spare
# (Odoo's master looks at its workers every few seconds).
CHAOS_CRON_LIMIT = 80
CHAOS_RESPAWN_WAIT = 60  # seconds for Odoo's master to replace a killed cron worker
# prefork's master logs this when a worker process starts (odoo/service/server.py).
CRON_WORKER_ALIVE = re.compile(r"odoo\.service\.server: Worker WorkerCron \((\d+)\) alive")
# A line of the chaos program asking for a fault, answered on its stdin.
CHAOS_REQUEST = "@@harness "


def parent_pid(pid: int) -> int | None:
    """Parent of ``pid`` from /proc (Linux), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    return int(stat.rpartition(")")[2].split()[1])


class ChaosServer:
    """The chaos run's Odoo: multi-process, on one port, SIGKILLed and started again.

    It tracks the cron worker processes from the master's "Worker WorkerCron
    (PID) alive" lines; a PID counts while the process is a child of the
    current master.
    """

    def __init__(self, stack: contextlib.ExitStack, setup: OdooSetup, db: str, log_path: Path,
                 pg: PgServer):
        self.stack, self.setup, self.db, self.log_path = stack, setup, db, log_path
        self.pg = pg
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.odoo: OdooProcess | None = None
        self.cron_pids: list[int] = []
        self.lock = threading.Lock()

    def _on_line(self, line: str) -> None:
        match = CRON_WORKER_ALIVE.search(line)
        if match:
            with self.lock:
                self.cron_pids.append(int(match.group(1)))

    @property
    def pid(self) -> int:
        assert self.odoo and self.odoo.proc
        return self.odoo.proc.pid

    def start(self) -> None:
        self.odoo, url = serve(
            self.stack,
            self.setup,
            self.db,
            self.port,
            self.log_path,
            echo=False,
            workers=CHAOS_WORKERS,
            on_line=self._on_line,
            options=(f"--limit-time-real-cron={CHAOS_CRON_LIMIT}",),
        )
        assert url == self.url
        # Runs before the OdooProcess's own (graceful, slow) stop: the run is over.
        self.stack.callback(self.kill)

    def kill(self) -> None:
        """SIGKILL the server's whole process group (master, workers, gevent)."""
        if self.odoo and self.odoo.proc:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.odoo.proc.pid, signal.SIGKILL)
            self.odoo.wait()

    def cron_workers(self) -> list[int]:
        with self.lock:
            pids = list(dict.fromkeys(self.cron_pids))
        return [pid for pid in pids if self.odoo and parent_pid(pid) == self.pid]

    def kill_cron_worker(self, pid: int) -> str:
        before = self.cron_workers()
        if pid not in before:
            raise HarnessError(f"{pid} is not a live cron worker of the server ({before})")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + CHAOS_RESPAWN_WAIT
        while time.monotonic() < deadline:
            new = [other for other in self.cron_workers() if other not in before]
            if new:
                return f"killed {pid} respawned {new[0]}"
            time.sleep(0.2)
        return f"killed {pid} respawned none"

    def kill_and_restart(self) -> str:
        old = self.pid
        self.kill()
        started = time.monotonic()
        self.start()
        return f"killed {old} restarted {self.pid} in {time.monotonic() - started:.1f}s"

    def restart_postgres(self) -> str:
        if self.pg.cluster is None:
            raise HarnessError("PostgreSQL is not the harness's own cluster: it cannot restart it")
        return f"restarted PostgreSQL in {self.pg.cluster.restart():.1f}s"

    def handle(self, request: str) -> str:
        """Carry out one request of the chaos program; the answer line."""
        words = request.split()
        try:
            if words == ["cron-workers"]:
                return "ok " + " ".join(map(str, self.cron_workers()))
            if len(words) == 2 and words[0] == "kill-cron" and words[1].isdigit():
                return "ok " + self.kill_cron_worker(int(words[1]))
            if words == ["kill-server"]:
                return "ok " + self.kill_and_restart()
            if words == ["restart-postgres"]:
                return "ok " + self.restart_postgres()
            return f"error unknown request {request!r}"
        except HarnessError as exc:
            return "error " + str(exc).replace("\n", " ")


def run_chaos_program(server: ChaosServer, cmd: list[str], env: dict[str, str],
                      stop_at: float) -> int | None:
    """Run the chaos program, serving its fault requests; its exit code, or None
    when it had to be stopped at ``stop_at`` (time.monotonic())."""
    proc = subprocess.Popen(
        cmd, env=env, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        encoding="utf-8", errors="replace", bufsize=1,
    )
    assert proc.stdin and proc.stdout
    stopped = threading.Event()

    def stop() -> None:
        stopped.set()
        say("the chaos run reached its time bound: stopping it")
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()

    watchdog = threading.Timer(max(stop_at - time.monotonic(), 0), stop)
    watchdog.daemon = True
    watchdog.start()
    try:
        for line in proc.stdout:
            if not line.startswith(CHAOS_REQUEST):
                sys.stdout.write(line)
                sys.stdout.flush()
                continue
            request = line[len(CHAOS_REQUEST):].strip()
            say(f"chaos asks: {request}")
            answer = server.handle(request)
            say(f"  -> {answer}")
            with contextlib.suppress(BrokenPipeError, ValueError):
                proc.stdin.write(answer + "\n")
                proc.stdin.flush()
        returncode = proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return None if stopped.is_set() else returncode


def cmd_chaos(_args: argparse.Namespace) -> int:
    """Prove that the outbox neither loses, repeats nor stalls a change (scripts/chaos.py)."""
    odoo = prepared_odoo(browser=False)
    # The bound starts once Odoo is found or built: a first build is not part of it.
    started, started_epoch = time.monotonic(), time.time()
    log_path = RUN_DIR / "chaos.log"
    returncode: int | None = 1
    try:
        with session() as stack:
            # Throwaway cluster without fsync: its restart is a fast shutdown, which
            # checkpoints, never a crash.
            pg = stack.enter_context(postgres(persistent=False, fast=True))
            work = stack.enter_context(workspace())
            setup = odoo_setup(odoo, work, work / "data", pg)
            db = fresh_db_name("bjet_chaos")
            stack.callback(drop_database, setup, db)  # LIFO: after Odoo stops
            prepare_database(setup, db, log_path, echo=False)
            server = ChaosServer(stack, setup, db, log_path, pg)
            server.start()
            say(f"Odoo {odoo.version} serving {db} at {server.url} with {CHAOS_WORKERS} HTTP "
                f"workers and 2 cron workers, limit_time_real_cron {CHAOS_CRON_LIMIT} s "
                f"(log: {log_path})")
            env = {
                **setup.env,
                "BJET_BENCH_URL": server.url,
                "BJET_BENCH_DB": db,
                "BJET_ADDONS_PATH": setup.addons_path,
                "BJET_CHAOS_LOG": str(log_path),
                "BJET_CHAOS_STARTED": str(started_epoch),
                "BJET_CHAOS_REPORT_BY": str(started_epoch + CHAOS_REPORT_BY),
                "BJET_CHAOS_BOUND": str(CHAOS_BOUND),
                "BJET_CHAOS_CRON_LIMIT": str(CHAOS_CRON_LIMIT),
            }
            say(f"running {CHAOS_PROGRAM.relative_to(REPO).as_posix()}")
            returncode = run_chaos_program(
                server, [odoo.python, str(CHAOS_PROGRAM)], env, started + CHAOS_STOP_AT
            )
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    say(f"chaos: took {time.monotonic() - started:.1f}s in all (bound {CHAOS_BOUND}s)")
    if returncode is None:
        say(f"FAILED: the chaos run did not finish within its bound ({CHAOS_BOUND}s)")
        return 1
    if returncode:
        say(f"FAILED: the chaos run exited with code {returncode}")
    return returncode


COMMANDS = {
    "test": (cmd_test, "lint + install with tests in a fresh db; last line: N passed, N failed"),
    "run": (cmd_run, "serve a demo db on 127.0.0.1:$PORT (default 8069), db $DB"),
    "bench": (cmd_bench, "run bench/*.py against a freshly started server"),
    "chaos": (cmd_chaos, "faults, kills and a PostgreSQL restart under load; check the outbox"),
    "lint": (cmd_lint, "ruff check ., then pylint-odoo with OCA's checks"),
    "pot": (cmd_pot, f"write {POT_FILE.relative_to(REPO)} from the code"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_func, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        return COMMANDS[args.command][0](args)
    except HarnessError as exc:
        say(f"ERROR: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
