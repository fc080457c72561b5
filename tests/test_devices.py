"""The GPU-slot allocator, with cards faked through MOA_FAKE_GPUS: exclusive slots under concurrency,
a killed holder frees its card, a device set by SLURM or the user is left alone."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from moa import devices

HOLD = """
import json, os, sys, time
from moa import devices
slot = devices.acquire(1, lock_dir=sys.argv[1], retry_seconds=(0.01, 0.05))
start = time.time()
time.sleep(float(sys.argv[2]))
print(json.dumps({"card": slot.card, "env": os.environ["CUDA_VISIBLE_DEVICES"], "start": start,
                  "end": time.time()}), flush=True)
"""


def holder_env(cards: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    return {**env, devices.FAKE_GPUS_ENV: str(cards)}


@pytest.fixture
def no_preset_device(monkeypatch):
    # set before deleting, so that monkeypatch also removes what the allocator exports
    for name in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def test_concurrent_jobs_never_hold_the_same_card(tmp_path):
    processes = [subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "0.4"], env=holder_env(2),
                                  stdout=subprocess.PIPE, text=True) for _ in range(8)]
    held = [json.loads(p.communicate(timeout=120)[0]) for p in processes]
    assert all(p.returncode == 0 for p in processes)
    assert {h["card"] for h in held} == {"0", "1"}
    assert all(h["env"] == h["card"] for h in held)
    for card in ("0", "1"):
        spans = sorted((h["start"], h["end"]) for h in held if h["card"] == card)
        assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:])), spans
    # eight jobs, two cards, 0.4 s each: at most two ran at a time, so it took four rounds or more
    starts, ends = [h["start"] for h in held], [h["end"] for h in held]
    assert max(ends) - min(starts) >= 4 * 0.4 - 0.05


def test_a_killed_holder_frees_its_card(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "600"], env=holder_env(1))
    lock = tmp_path / "gpu0.lock"
    deadline = time.monotonic() + 60
    while not (lock.exists() and "pid" in lock.read_text()):
        assert time.monotonic() < deadline, "the holder never took the card"
        time.sleep(0.05)
    assert devices.try_lock(tmp_path, 0) is None, "the card is held"
    assert f"pid {holder.pid}" in devices.holder(tmp_path, 0)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    fd = devices.try_lock(tmp_path, 0)
    assert fd is not None, "SIGKILL freed the card"
    os.close(fd)


def test_a_device_set_before_the_job_is_kept_and_no_lock_is_taken(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setenv(devices.FAKE_GPUS_ENV, "2")
    slot = devices.acquire(1, lock_dir=tmp_path / "locks")
    assert (slot.card, slot.how, slot.lock_fd) == ("3", "preset", None)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert not (tmp_path / "locks").exists()


def test_an_empty_device_list_set_before_the_job_means_the_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    slot = devices.acquire(1, lock_dir=tmp_path)
    assert slot.card is None and slot.torch_device() == "cpu"


def test_the_won_card_is_exported_and_released(tmp_path, no_preset_device, monkeypatch):
    monkeypatch.setenv(devices.FAKE_GPUS_ENV, "1")
    slot = devices.acquire(1, lock_dir=tmp_path)
    assert (slot.card, slot.how) == ("0", "lock")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0" and os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert devices.try_lock(tmp_path, 0) is None
    slot.release()
    fd = devices.try_lock(tmp_path, 0)
    assert fd is not None
    os.close(fd)


def test_no_card_or_no_request_means_the_cpu_without_locks(tmp_path, no_preset_device, monkeypatch):
    monkeypatch.setenv(devices.FAKE_GPUS_ENV, "0")
    assert devices.acquire(1, lock_dir=tmp_path / "a").card is None
    monkeypatch.setenv(devices.FAKE_GPUS_ENV, "2")
    slot = devices.acquire(0, lock_dir=tmp_path / "b")
    assert (slot.card, slot.how, slot.torch_device()) == (None, "none", "cpu")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_waiting_for_a_busy_card_times_out_naming_its_holder(tmp_path, no_preset_device, monkeypatch):
    monkeypatch.setenv(devices.FAKE_GPUS_ENV, "1")
    held = devices.try_lock(tmp_path, 0)
    with pytest.raises(TimeoutError, match=rf"no free GPU slot in .* \(gpu0: pid {os.getpid()} on "):
        devices.acquire(1, lock_dir=tmp_path, timeout=0.2, retry_seconds=(0.05, 0.1))
    os.close(held)


def test_a_fake_card_count_must_be_a_number(monkeypatch):
    monkeypatch.setenv(devices.FAKE_GPUS_ENV, "two")
    with pytest.raises(ValueError, match="MOA_FAKE_GPUS must be a whole number of cards, got 'two'"):
        devices.count_cards()
