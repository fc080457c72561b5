"""GPU slots: which card a job trains on, so that concurrent jobs on one machine never share one.

Snakemake's `resources: gpu=1` with `--resources gpu=N` only caps how many GPU jobs run at once; it
never tells a job *which* card is its own, and every job would otherwise land on card 0. So each GPU
job calls `acquire` before anything touches CUDA:

- `CUDA_VISIBLE_DEVICES` already set (SLURM sets it for `--gpus`, or the user did): kept as it is,
  no lock taken; the scheduler that set it owns the card.
- otherwise a non-blocking `flock` on one lock file per physical card (`gpu<k>.lock`, k in PCI bus
  order) until one is won, retried with jitter; the process then exports `CUDA_VISIBLE_DEVICES=k` and
  holds the lock until it exits, so a crashed or killed job frees its card with it (the kernel drops
  the lock with the last open descriptor).
- no card at all: the CPU.

`MOA_FAKE_GPUS=N` pretends the machine has N cards, so the locking can be exercised without one (the
job then trains on the CPU, since torch finds no CUDA behind the card it was given).
"""
from __future__ import annotations

import fcntl
import logging
import os
import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FAKE_GPUS_ENV = "MOA_FAKE_GPUS"
DEFAULT_LOCK_DIR = ".snakemake/gpu_slots"
NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")


@dataclass
class Slot:
    """What a job was given. `card` is the CUDA_VISIBLE_DEVICES value it runs under (None: the CPU);
    `lock_fd` stays open for the life of the slot and is what keeps the card ours."""

    card: str | None
    how: str                    # "lock", "preset" or "none"
    lock_fd: int | None = None

    def release(self) -> None:
        """Give the card back before the process ends (a process that ends releases it anyway)."""
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def torch_device(self) -> str:
        """"cuda" when a card was given and torch can use it, else "cpu". Call only after `acquire`:
        the first CUDA query fixes which cards the process can see."""
        if self.card is None:
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


def count_cards() -> int:
    """Physical NVIDIA cards on this machine, found without initialising CUDA (which would pin the
    process to the cards visible at that moment)."""
    fake = os.environ.get(FAKE_GPUS_ENV)
    if fake is not None:
        try:
            return max(0, int(fake))
        except ValueError:
            raise ValueError(f"{FAKE_GPUS_ENV} must be a whole number of cards, got {fake!r}") from None
    if NVIDIA_PROC.is_dir():
        return len(list(NVIDIA_PROC.iterdir()))
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in listed.splitlines())


def try_lock(lock_dir, card: int) -> int | None:
    """The open descriptor of `gpu<card>.lock` if this process won its lock, else None."""
    path = Path(lock_dir) / f"gpu{card}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    # who holds it, for the log of whoever waits
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}\n".encode(), 0)
    return fd


def holder(lock_dir, card: int) -> str:
    try:
        return (Path(lock_dir) / f"gpu{card}.lock").read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def acquire(gpus: int, lock_dir=DEFAULT_LOCK_DIR, timeout: float | None = None,
            retry_seconds: tuple[float, float] = (0.5, 2.0)) -> Slot:
    """The card this job runs on (see the module's docstring). `gpus` is what the job asked for (0 or
    1); `timeout` (seconds, None = wait for ever) bounds the wait for a free card."""
    if gpus < 1:
        log.info("device: CPU (the model asks for no GPU)")
        return Slot(card=None, how="none")
    preset = os.environ.get("CUDA_VISIBLE_DEVICES")
    if preset is not None:
        card = preset if preset.strip() not in ("", "-1") else None
        log.info("device: CUDA_VISIBLE_DEVICES=%r was set before the job started (SLURM or the user); "
                 "kept, no slot lock taken", preset)
        return Slot(card=card, how="preset")
    n_cards = count_cards()
    if n_cards == 0:
        log.info("device: CPU (the model asks for a GPU but this machine has none)")
        return Slot(card=None, how="none")
    Path(lock_dir).mkdir(parents=True, exist_ok=True)
    # jitter decorrelates jobs that Snakemake started in the same instant
    jitter = random.Random(os.getpid() ^ time.time_ns())
    started = last_report = time.monotonic()
    while True:
        for card in jitter.sample(range(n_cards), n_cards):
            fd = try_lock(lock_dir, card)
            if fd is not None:
                os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
                os.environ["CUDA_VISIBLE_DEVICES"] = str(card)
                log.info("device: GPU slot %d of %d won (lock %s); CUDA_VISIBLE_DEVICES=%d",
                         card, n_cards, Path(lock_dir) / f"gpu{card}.lock", card)
                return Slot(card=str(card), how="lock", lock_fd=fd)
        waited = time.monotonic() - started
        if timeout is not None and waited >= timeout:
            holders = "; ".join(f"gpu{k}: {holder(lock_dir, k)}" for k in range(n_cards))
            raise TimeoutError(f"no free GPU slot in {lock_dir} after {waited:.0f} s ({holders}); "
                               "run with --resources gpu=N, N at most the number of cards")
        if time.monotonic() - last_report >= 60:
            log.info("device: all %d GPU slots in %s busy for %.0f s, still waiting", n_cards, lock_dir, waited)
            last_report = time.monotonic()
        time.sleep(jitter.uniform(*retry_seconds))
