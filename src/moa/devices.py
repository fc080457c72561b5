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

A job that was given a card but finds no usable CUDA behind it stops at once (`NoUsableCard`) instead of
training for hours on the CPU, unless the config opts in to that (`gpus.cpu_fallback`).
`MOA_FAKE_GPUS=N` pretends the machine has N cards, so the locking can be exercised without one (the
job then trains on the CPU: a faked card has no CUDA behind it, and that is expected).

The allocator also exports `CUBLAS_WORKSPACE_CONFIG` before CUDA starts, which deterministic cuBLAS
needs (`moa.training.Device` turns determinism on for a card); and `out_of_memory_explained` turns a
card's out-of-memory error into a message that says which settings to lower.
"""
from __future__ import annotations

import contextlib
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
# cuBLAS is deterministic only with a fixed workspace, read once when CUDA creates its first handle
CUBLAS_WORKSPACE = ("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


class NoUsableCard(RuntimeError):
    """A job was given a card but cannot use CUDA."""


class CardOutOfMemory(RuntimeError):
    """A card ran out of memory; the message names the settings that set how much is needed."""


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

    def torch_device(self, cpu_fallback: bool = False) -> str:
        """"cuda" when a card was given and torch can use it; "cpu" when none was given, the card is
        faked (MOA_FAKE_GPUS) or `cpu_fallback` allows it (with a warning); otherwise `NoUsableCard`.
        Call only after `acquire`: the first CUDA query fixes which cards the process can see."""
        if self.card is None:
            return "cpu"
        reason = cuda_unavailable_reason()
        if reason is None:
            return "cuda"
        if os.environ.get(FAKE_GPUS_ENV) is not None:
            log.info("device: card %s is faked (%s): the job runs on the CPU", self.card, FAKE_GPUS_ENV)
            return "cpu"
        given = f"this job was given card {self.card} (CUDA_VISIBLE_DEVICES={self.card!r}) but cannot use CUDA: {reason}"
        if cpu_fallback:
            log.warning("device: %s; gpus.cpu_fallback is true, so it runs on the CPU", given)
            return "cpu"
        raise NoUsableCard(f"{given}. It stops now rather than train for hours on the CPU; fix the CUDA set-up "
                           "(driver, a CUDA build of torch), or set gpus.cpu_fallback: true in the config to "
                           "run such jobs on the CPU")


def cuda_unavailable_reason() -> str | None:
    """Why torch cannot use CUDA here, in words; None when it can."""
    import torch

    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU-only build"
    try:
        torch.cuda.init()
    except Exception as error:  # torch raises RuntimeError or AssertionError, with the driver's words
        return str(error).strip().splitlines()[0]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"torch sees no CUDA device (CUDA_VISIBLE_DEVICES={visible!r})"


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
        os.environ.setdefault(*CUBLAS_WORKSPACE)
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
                os.environ.setdefault(*CUBLAS_WORKSPACE)
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


MEMORY_SETTINGS = ("batch_size", "virtual_batch_size", "inference_batch_size", "resolution", "precision")


@contextlib.contextmanager
def out_of_memory_explained(what: str, settings: dict):
    """Turns torch's out-of-memory error inside the block into `CardOutOfMemory`, whose one-line
    message names `what` ran out, the card's free and total memory, and the `settings` that set the
    memory needed (those of MEMORY_SETTINGS, in that order), saying which to lower. Nothing is retried
    with smaller batches: that would change the results."""
    import torch

    try:
        yield
    except torch.OutOfMemoryError as error:
        raise CardOutOfMemory(out_of_memory_message(what, settings)) from error


def out_of_memory_message(what: str, settings: dict) -> str:
    import torch

    try:
        free, total = torch.cuda.mem_get_info()
        card = f"{torch.cuda.get_device_name()}: {free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB"
    except Exception:  # the error came from elsewhere than a usable card
        card = "card memory unknown"
    named = ", ".join(f"{key} = {settings[key]}" for key in MEMORY_SETTINGS if key in settings)
    lower = [key for key in MEMORY_SETTINGS if key != "precision" and key in settings]
    advice = f"lower {' or '.join(lower)}" if lower else "lower the batch size"
    if settings.get("precision", "32") in ("32", 32):
        advice += ", or train in bf16-mixed or 16-mixed"
    return (f"{what} ran out of memory on the card ({card}) with {named or 'its default settings'}: {advice}, "
            "or use a card with more memory. "
            "Batches are never shrunk automatically, since that would change the results; a retry fails the same way")
