"""A real one-node SLURM cluster on localhost for the tests: munged, slurmctld and slurmd started from
Debian's packages with a private configuration, two fake GPUs, no accounting; stopped again by pid.

Everything lives in one folder (configuration, munge key and socket, state, logs, pid files), so the
cluster touches nothing of the machine's own and a second one can run beside it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PROGRAMS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "srun")


class ClusterUnavailable(RuntimeError):
    """The daemons cannot run here; the message says why."""


def missing_programs() -> list[str]:
    return [name for name in PROGRAMS if not Path(program(name)).exists()]


def program(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def node_line(host: str) -> str:
    """slurmd's own description of this machine, with memory left for the system, and two GPUs."""
    described = subprocess.run([program("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(f.split("=", 1) for f in described.split("\n")[0].split() if "=" in f)
    keep = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
    memory = int(int(fields["RealMemory"]) * 0.85)
    return (f"NodeName={host} NodeAddr=127.0.0.1 " + " ".join(f"{k}={fields[k]}" for k in keep if k in fields)
            + f" RealMemory={memory} Gres=gpu:2 State=UNKNOWN")


def write_configuration(root: Path, host: str) -> Path:
    for folder in ("state", "spool", "log", "run", "munge", "dev"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for k in (0, 1):
        device = root / "dev" / f"gpu{k}"
        if not device.exists():
            os.mknod(device, 0o666 | 0o020000, os.makedev(1, 3))   # character devices, like /dev/null
    (root / "gres.conf").write_text(
        "AutoDetect=off\n" + "".join(f"NodeName={host} Name=gpu File={root}/dev/gpu{k}\n" for k in (0, 1)))
    conf = root / "slurm.conf"
    conf.write_text(f"""\
ClusterName=moatest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge/munge.socket
CredType=cred/munge
CommunicationParameters=NoInAddrAny
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
EnforcePartLimits=ALL
MinJobAge=600
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
GresTypes=gpu
{node_line(host)}
PartitionName=main Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    return conf


def client_shims(root: Path, conf: Path) -> Path:
    """A folder with an `srun` that knows this cluster's configuration. Inside a job, the SLURM executor
    starts the job step with `srun` after dropping every SLURM_* variable, SLURM_CONF included, and
    without it srun would look for the machine's own /etc/slurm/slurm.conf."""
    folder = root / "bin"
    folder.mkdir(exist_ok=True)
    shim = folder / "srun"
    shim.write_text(f'#!/bin/sh\nSLURM_CONF={conf} exec {program("srun")} "$@"\n')
    shim.chmod(0o755)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_munge(root: Path) -> None:
    key = root / "munge" / "munge.key"
    subprocess.run([program("mungekey"), "--create", f"--keyfile={key}", "--force"], check=True,
                   capture_output=True)
    shutil.chown(root / "munge", "munge", "munge")
    shutil.chown(key, "munge", "munge")
    os.chmod(root / "munge", 0o755)
    os.chmod(key, 0o600)
    # munged refuses to run as root, and checks that every folder above its files is not world-writable
    subprocess.run(["runuser", "-u", "munge", "--", program("munged"), f"--key-file={key}",
                    f"--socket={root}/munge/munge.socket", f"--pid-file={root}/munge/munged.pid",
                    f"--log-file={root}/munge/munged.log", f"--seed-file={root}/munge/munged.seed",
                    "--force"], check=True, capture_output=True, text=True)


def pids(root: Path) -> list[int]:
    found = []
    for pid_file in (root / "run" / "slurmd.pid", root / "run" / "slurmctld.pid", root / "munge" / "munged.pid"):
        with contextlib.suppress(OSError, ValueError):
            found.append(int(pid_file.read_text().split()[0]))
    return found


def stop(root: Path) -> None:
    """Stop the daemons this cluster started (by their pid files), and only those."""
    for pid in pids(root):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for pid in pids(root):
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def single_node_cluster(root: Path, timeout: float = 60):
    """Start the cluster under `root`, yield the environment its clients need, stop it afterwards.
    Raises ClusterUnavailable with the reason when it cannot start."""
    missing = missing_programs()
    if missing:
        raise ClusterUnavailable(f"SLURM/munge programs not installed: {', '.join(missing)} (make slurm)")
    if os.geteuid() != 0:
        raise ClusterUnavailable("starting slurmctld, slurmd and munged needs root")
    host = socket.gethostname().split(".")[0]
    conf = write_configuration(root, host)
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": f"{client_shims(root, conf)}:{os.environ['PATH']}"}
    try:
        try:
            start_munge(root)
            for daemon in ("slurmctld", "slurmd"):
                subprocess.run([program(daemon)], env=env, check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as error:
            raise ClusterUnavailable(f"{error.cmd[0]} did not start: {error.stderr.strip()}") from error
        deadline = time.monotonic() + timeout
        while True:
            state = subprocess.run([program("sinfo"), "-h", "-N", "-o", "%T"], env=env, capture_output=True,
                                   text=True).stdout.strip()
            if state in ("idle", "mixed", "allocated"):
                break
            if time.monotonic() > deadline:
                logs = "\n".join((root / "log" / f).read_text()[-2000:] for f in ("slurmctld.log", "slurmd.log")
                                 if (root / "log" / f).exists())
                raise ClusterUnavailable(f"the node did not become idle in {timeout:.0f} s "
                                         f"(sinfo: {state!r}); daemon logs:\n{logs}")
            time.sleep(0.5)
        yield env
    finally:
        stop(root)
