"""GPU sampling: NVML logic with a fake NVML module, the real no-GPU fallback, /proc facts and log buffers."""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support.llama import StartServer

from tui.core.logs.parse import parse_text
from tui.core.poll.buffers import buffers_from_events
from tui.core.poll.gpu import GpuSampler
from tui.core.procfs import find_listening_pid, pid_for_url, process_rss

GIB = 1024**3


class FakeNVMLError(Exception):
    """Stands in for pynvml.NVMLError."""


class FakeNVML:
    """Pure-logic stand-in for pynvml: two GPUs, the second without an energy counter."""

    NVMLError = FakeNVMLError

    def __init__(self, server_pid: int, power_w: tuple[float, float] = (300.0, 100.0)) -> None:
        self.server_pid = server_pid
        self.power_w = list(power_w)
        self.energy_mj = 1_000_000.0
        self.shutdown = False

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        pass

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.shutdown = True

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:  # noqa: N802
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes | str:  # noqa: N802
        return b"NVIDIA H100 80GB HBM3" if handle == 0 else "NVIDIA L4"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:  # noqa: N802
        return SimpleNamespace(total=80 * GIB, used=(10 + handle) * GIB, free=(70 - handle) * GIB)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:  # noqa: N802
        return SimpleNamespace(gpu=90 - handle * 50, memory=10)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:  # noqa: N802
        return int(self.power_w[handle] * 1000)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: int) -> int:  # noqa: N802
        return 700_000 if handle == 0 else 72_000

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> float:  # noqa: N802
        if handle == 1:
            raise FakeNVMLError("Not Supported")
        return self.energy_mj

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]:  # noqa: N802
        if handle == 1:
            return [SimpleNamespace(pid=4242, usedGpuMemory=GIB)]
        return [
            SimpleNamespace(pid=self.server_pid, usedGpuMemory=6 * GIB),
            SimpleNamespace(pid=4242, usedGpuMemory=GIB),
        ]


class BrokenNVML:
    """nvmlInit fails the way it does on a machine without the driver."""

    NVMLError = FakeNVMLError

    def nvmlInit(self) -> None:  # noqa: N802
        raise FakeNVMLError("NVML Shared Library Not Found")


def test_fake_nvml_devices_process_vram_and_power() -> None:
    nvml = FakeNVML(server_pid=os.getpid())
    sampler = GpuSampler(nvml, server_pid=os.getpid())
    snap = sampler.sample(ts=100.0)
    assert snap.available and snap.reason == ""
    h100, l4 = snap.devices
    assert (h100.name, l4.name) == ("NVIDIA H100 80GB HBM3", "NVIDIA L4")
    assert (h100.mem_used, h100.mem_total, h100.util_pct) == (10 * GIB, 80 * GIB, 90.0)
    assert (h100.power_w, h100.power_limit_w, l4.power_limit_w) == (300.0, 700.0, 72.0)
    assert (h100.process_vram, l4.process_vram) == (6 * GIB, 0)
    assert snap.server_process_vram == 6 * GIB
    assert snap.mem_used == 21 * GIB and snap.power_w == 400.0
    assert snap.process_rss is not None and snap.process_rss > 0
    assert (h100.energy_source, l4.energy_source) == ("counter", "integrated")
    sampler.close()
    assert nvml.shutdown


def test_energy_counter_integration_and_tokens_per_joule() -> None:
    nvml = FakeNVML(server_pid=1)
    sampler = GpuSampler(nvml)
    sampler.sample(ts=0.0)
    nvml.energy_mj += 300_000  # 300 J on GPU 0 over 1 s
    nvml.power_w[1] = 300.0  # GPU 1 goes from 100 W to 300 W: trapezoid = 200 J
    second = sampler.sample(ts=1.0)
    assert second.devices[1].energy_mj == pytest.approx(200_000)
    assert sampler.energy_between(0.0, 1.0) == pytest.approx(500.0)
    assert sampler.energy_between(0.25, 0.75) == pytest.approx(250.0)
    # Past the last sample: extrapolated with the current total draw (300 W + 300 W) for up to 5 s.
    assert sampler.energy_between(1.0, 2.0) == pytest.approx(600.0)
    assert sampler.energy_between(1.0, 60.0) is None
    assert sampler.tokens_per_joule(1000, 0.0, 1.0) == pytest.approx(2.0)


def test_nvml_failure_gives_a_reason_and_fallback_facts() -> None:
    sampler = GpuSampler(BrokenNVML(), server_pid=os.getpid())
    snap = sampler.sample()
    assert not snap.available and snap.devices == ()
    assert snap.reason == "no NVIDIA GPU (NVML: NVML Shared Library Not Found)"
    assert snap.process_rss is not None and snap.process_rss > 0
    assert sampler.energy_between(0, 1) is None
    disabled = GpuSampler(FakeNVML(1), enabled=False).sample()
    assert not disabled.available and "disabled" in disabled.reason


def test_real_nvml_on_this_machine() -> None:
    sampler = GpuSampler()
    snap = sampler.sample()
    sampler.close()
    if snap.available:  # a machine with an NVIDIA GPU and driver
        assert snap.devices and all(d.mem_total > 0 for d in snap.devices)
    else:
        assert snap.reason.startswith("no NVIDIA GPU (NVML: ") and snap.devices == ()


@pytest.mark.llama
def test_server_process_found_by_port_with_rss_and_log_buffers(llama_server: StartServer) -> None:
    server = llama_server(ctx_size=8192)
    log = server.wait_for_log("n_ctx_slot")
    assert find_listening_pid(server.port) == server.proc.pid
    assert pid_for_url(server.url) == server.proc.pid
    assert pid_for_url("http://example.invalid:8080") is None
    rss = process_rss(server.proc.pid)
    assert rss is not None and rss > 1024 * 1024
    buffers = buffers_from_events(parse_text(log))
    by_device = {b.device: b for b in buffers}
    logged_kv = sum(float(m) for m in re.findall(r"CPU KV buffer size = +([\d.]+) MiB", log))
    assert logged_kv > 0 and by_device["CPU"].kv_mib == pytest.approx(logged_kv)
    assert any(b.model_mib > 0 for b in buffers)
    snap = GpuSampler(BrokenNVML(), server_url=server.url).sample(buffers)
    assert snap.server_pid == server.proc.pid and snap.buffers == buffers


def test_buffers_from_a_reload_replace_the_old_group() -> None:
    log = "\n".join(
        [
            "0.00.011.682 I load_tensors:   CPU_Mapped model buffer size =     0.41 MiB",
            "0.00.012.145 I llama_kv_cache:        CPU KV buffer size =     2.00 MiB",
            "0.00.015.028 I sched_reserve:        CPU compute buffer size =     5.14 MiB",
            "0.09.011.682 I load_tensors:   CPU_Mapped model buffer size =     0.41 MiB",
            "0.09.012.145 I llama_kv_cache:        CPU KV buffer size =     1.00 MiB",
            "0.09.012.146 I llama_kv_cache:        CPU KV buffer size =     0.25 MiB",
        ]
    )
    buffers = {b.device: b for b in buffers_from_events(parse_text(log))}
    assert buffers["CPU"].kv_mib == pytest.approx(1.25) and buffers["CPU"].compute_mib == 0
    assert buffers["CPU_Mapped"].model_mib == pytest.approx(0.41)


def test_process_rss_of_missing_pid(tmp_path: Path) -> None:
    assert process_rss(2**22 + 12345) is None
    assert find_listening_pid(1, proc=tmp_path) is None


def test_nvml_error_mid_sample_keeps_fallback_facts() -> None:
    nvml = FakeNVML(server_pid=1)
    sampler = GpuSampler(nvml, server_pid=os.getpid())
    assert sampler.sample().available

    def lost(index: int) -> int:
        raise FakeNVMLError("GPU is lost")

    nvml.nvmlDeviceGetHandleByIndex = lost  # type: ignore[method-assign]
    snap = sampler.sample()
    assert not snap.available and snap.reason == "NVML error: GPU is lost"
    assert snap.process_rss is not None and len(sampler.history) == 2
