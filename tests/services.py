"""Real servers for tests: a throwaway PostgreSQL and a single-node SLURM on private ports.

Sweeps that run in several processes need a real RDB storage and a real scheduler to be tested
honestly: mocks would hide locking, trial numbering and GPU assignment. Each helper runs its
servers under a fresh temporary directory, on ports picked at run time, and removes every trace
on exit, so two sessions on one machine do not collide.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest


class ServiceUnavailable(RuntimeError):
    """The programs a service needs are not installed; the fixtures skip with this reason."""


def _free_ports(count: int) -> list[int]:
    """Ports nobody listens on now, held open together so that they are distinct."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _tail(path: Path, lines: int = 30) -> str:
    """The end of a log file, so that an error says why a server did not start."""
    if not path.exists():
        return f"--- {path}: missing"
    return "\n".join([f"--- {path}:", *path.read_text(errors="replace").splitlines()[-lines:]])


def _run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command to completion; raise with its output if it fails."""
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def _require_user(name: str) -> pwd.struct_passwd:
    """The account a server must run as (PostgreSQL and munged refuse to run as root)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ServiceUnavailable(f"there is no '{name}' user to run the server as") from None


def _give(path: Path, user: pwd.struct_passwd) -> None:
    os.chown(path, user.pw_uid, user.pw_gid)


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL that trusts TCP connections from 127.0.0.1 as ``postgres``."""

    host: str
    port: int
    bindir: Path
    # pg_ctl as the postgres user, for restarting the server under a running sweep
    control: Callable[..., None] = lambda *args: None

    def restart(self, down_s: float = 0.0) -> None:
        """Stop the server (fast: open connections are cut, as by a crash or an upgrade),
        stay down ``down_s`` seconds, start it again on the same port and data."""
        self.control("stop", "-m", "fast")
        time.sleep(down_s)
        self.control("start")

    def new_database(self, name: str) -> str:
        """Create database ``name``; return its SQLAlchemy URL (psycopg 3 driver)."""
        _run(
            self.bindir / "createdb", "-h", self.host, "-p", str(self.port), "-U", "postgres", name
        )
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{name}"


def _postgres_bindir() -> Path:
    """Where initdb and pg_ctl live: ``pg_config --bindir``, else the newest packaged version."""
    candidates = []
    if pg_config := shutil.which("pg_config"):
        candidates.append(Path(_run(pg_config, "--bindir").strip()))
    packaged = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(packaged, key=lambda path: int(path.parent.name), reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise ServiceUnavailable("PostgreSQL server programs (initdb, pg_ctl) are not installed")


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a throwaway PostgreSQL on a free port of 127.0.0.1; stop it and delete its data."""
    bindir = _postgres_bindir()
    user = _require_user("postgres")
    if not (runuser := shutil.which("runuser")):
        raise ServiceUnavailable("runuser (initdb and pg_ctl refuse root) is not on PATH")
    root = Path(tempfile.mkdtemp(prefix="sweeplab-pg-"))
    try:
        _give(root, user)
        data, log = root / "data", root / "postgres.log"
        (port,) = _free_ports(1)

        def as_postgres(program: str, *args: str) -> None:
            try:
                _run(runuser, "-u", "postgres", "--", bindir / program, *args, cwd=root)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n{_tail(log)}") from None

        as_postgres("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"

        def control(action: str, *args: str) -> None:
            started = ("-l", str(log), "-o", options) if action == "start" else ()
            as_postgres("pg_ctl", "-D", str(data), "-w", *started, *args, action)

        control("start")
        try:
            yield PostgresServer(host="127.0.0.1", port=port, bindir=bindir, control=control)
        finally:
            control("stop", "-m", "fast")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class SlurmCluster:
    """A running single-node SLURM; ``env`` must be in the environment of sbatch, submitit, ..."""

    partition: str
    node: str
    gpus: int
    env: dict[str, str]


SLURM_PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")
# slurmd accepts any character device as a GPU; with task/none and no cgroups nothing opens it.
FAKE_GPU_DEVICES = ("/dev/tty0", "/dev/tty1", "/dev/null", "/dev/zero", "/dev/full", "/dev/urandom")
# Inherited by the daemons and every slurmstepd, so that teardown can find them all.
MARKER = "SWEEPLAB_TEST_SLURM"
# Daemons run with -D, so they log to stderr, which goes to a file per daemon.
# batch_sched_delay=0 starts a batch job about a second sooner (the default waits 3 s).
SLURM_CONF = """\
ClusterName=sweeplab-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
KillWait=2
SchedulerParameters=batch_sched_delay=0
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
PlugStackConfig={root}/plugstack.conf
GresTypes=gpu
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} Gres=gpu:{gpus}
PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE OverSubscribe=FORCE:4
"""


@contextmanager
def slurm_cluster(partition: str = "debug", gpus: int = 2) -> Iterator[SlurmCluster]:
    """Start munged, slurmctld and slurmd for one node with ``gpus`` fake GPUs; tear all down.

    The munged is private (own key and socket), so the host's munge is neither needed nor
    touched. The fake GPUs are harmless character devices that SLURM hands out like real ones,
    setting ``CUDA_VISIBLE_DEVICES``, which is what trials placed on GPUs rely on.
    """
    missing = [name for name in SLURM_PROGRAMS if not shutil.which(name)]
    if missing:
        raise ServiceUnavailable(f"SLURM programs not on PATH: {', '.join(missing)}")
    munge_user = _require_user("munge")
    devices = [path for path in FAKE_GPU_DEVICES if Path(path).is_char_device()][:gpus]
    if len(devices) < gpus:
        raise ServiceUnavailable(f"fewer than {gpus} character devices to stand in for GPUs")

    root = Path(tempfile.mkdtemp(prefix="sweeplab-slurm-"))
    root.chmod(0o755)  # munged, running as munge, needs to pass through to its own directory
    node, conf, munge = socket.gethostname(), root / "slurm.conf", root / "munge"
    env = {"SLURM_CONF": str(conf)}
    daemon_env = {**os.environ, **env, MARKER: str(root)}
    logs = [root / "munged.log", root / "slurmctld.log", root / "slurmd.log"]
    daemons: list[subprocess.Popen] = []

    def start(*command: str | Path, log: Path, user: pwd.struct_passwd | None = None) -> None:
        ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
        with log.open("a") as out:
            daemons.append(subprocess.Popen(command, stdout=out, stderr=out, env=daemon_env, **ids))

    def node_idle() -> bool:
        states = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
        )
        return states.stdout.split() == ["idle"]

    try:
        munge.mkdir(mode=0o755)  # munged insists that everyone may pass through
        key = munge / "munge.key"
        key.write_bytes(os.urandom(128))
        key.chmod(0o600)
        _give(munge, munge_user)
        _give(key, munge_user)
        (root / "gres.conf").write_text(
            "".join(f"NodeName={node} Name=gpu File={device}\n" for device in devices)
        )
        (root / "plugstack.conf").write_text("")
        (root / "state").mkdir()
        (root / "spool").mkdir()
        ctld_port, slurmd_port = _free_ports(2)
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        conf.write_text(
            SLURM_CONF.format(
                node=node,
                ctld_port=ctld_port,
                slurmd_port=slurmd_port,
                munge_socket=munge / "munge.socket",
                root=root,
                cpus=os.cpu_count(),
                memory_mb=memory // 2**20 * 9 // 10,  # slurmd drains a node that has less
                gpus=gpus,
                partition=partition,
            )
        )
        start(
            "munged",
            "--foreground",
            f"--socket={munge / 'munge.socket'}",
            f"--key-file={key}",
            f"--pid-file={munge / 'munged.pid'}",
            f"--seed-file={munge / 'munged.seed'}",
            log=logs[0],
            user=munge_user,
        )
        _wait((munge / "munge.socket").exists, "munged socket", daemons, logs)
        start("slurmctld", "-D", "-f", conf, log=logs[1])
        start("slurmd", "-D", "-f", conf, log=logs[2])
        _wait(node_idle, f"node {node} idle in sinfo", daemons, logs)
        yield SlurmCluster(partition=partition, node=node, gpus=gpus, env=env)
    finally:
        _stop_slurm(env, daemons, root)
        shutil.rmtree(root, ignore_errors=True)


def _wait(
    ready: Callable[[], bool],
    what: str,
    daemons: list[subprocess.Popen],
    logs: list[Path],
    timeout: float = 60,
) -> None:
    """Poll ``ready``; fail with the daemons' log tails if one of them dies or time runs out."""
    deadline = time.monotonic() + timeout
    while not ready():
        dead = [str(process.args[0]) for process in daemons if process.poll() is not None]
        if dead or time.monotonic() > deadline:
            reason = f"{', '.join(dead)} exited" if dead else f"no {what} after {timeout:.0f} s"
            raise RuntimeError(f"SLURM did not start: {reason}\n" + "\n".join(map(_tail, logs)))
        time.sleep(0.2)


def _stop_slurm(env: dict[str, str], daemons: list[subprocess.Popen], root: Path) -> None:
    """Cancel all jobs, stop the daemons, then kill whatever of the cluster is still alive."""
    if daemons and all(process.poll() is None for process in daemons):
        run_env = {**os.environ, **env}

        def jobs() -> list[str]:
            squeue = ["squeue", "-h", "-o", "%i"]
            done = subprocess.run(squeue, env=run_env, capture_output=True, text=True, check=False)
            return done.stdout.split()

        if queued := jobs():
            subprocess.run(["scancel", *queued], env=run_env, capture_output=True, check=False)
            deadline = time.monotonic() + 20
            while jobs() and time.monotonic() < deadline:
                time.sleep(0.2)
    for process in reversed(daemons):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    for pid in _cluster_processes(root, Path(env["SLURM_CONF"])):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _cluster_processes(root: Path, conf: Path) -> list[int]:
    """Live processes of one cluster, found by their environment.

    Daemons and every slurmstepd carry ``MARKER``; job processes carry this cluster's
    ``SLURM_CONF`` and a ``SLURM_JOB_ID``, both set by slurmstepd whatever the submitter exported.
    """
    marker, conf_entry = f"{MARKER}={root}".encode(), f"SLURM_CONF={conf}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        in_job = conf_entry in environ and any(v.startswith(b"SLURM_JOB_ID=") for v in environ)
        if marker in environ or in_job:
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server per session; each test takes its own database from it."""
    try:
        with postgres_server() as server:
            yield server
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def slurm() -> Iterator[SlurmCluster]:
    """One SLURM cluster per session; tests apply ``slurm.env`` before they submit."""
    try:
        with slurm_cluster() as cluster:
            yield cluster
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
