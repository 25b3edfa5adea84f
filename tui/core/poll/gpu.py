"""Sample NVIDIA GPUs through NVML (injectable), with energy accounting and a no-GPU fallback."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tui.core.poll.snapshots import BufferSizes, GpuDevice, GpuSnapshot
from tui.core.procfs import pid_for_url, process_rss
from tui.core.waits import wait_set

GpuCallback = Callable[[GpuSnapshot], Awaitable[None] | None]


def load_nvml() -> Any:
    """Import pynvml (package nvidia-ml-py); raises ImportError when it is not installed."""
    import pynvml

    return pynvml


@dataclass
class _EnergyState:
    last_ts: float | None = None
    last_power_w: float | None = None
    integrated_mj: float = 0.0


class GpuSampler:
    """Reads per-GPU memory, utilisation, power and energy, and the watched server's VRAM and RSS."""

    def __init__(
        self,
        nvml: Any | None = None,
        *,
        server_pid: int | None = None,
        server_url: str | None = None,
        enabled: bool = True,
        history: int = 1800,
        max_extrapolate_s: float = 5.0,
    ) -> None:
        self._nvml: Any = nvml
        self._explicit_pid = server_pid
        self._server_url = server_url
        self._pid: int | None = server_pid
        self._reason = "" if enabled else "GPU sampling disabled in config ([gpu] enabled = false)"
        self._ready = False
        self._energy: dict[int, _EnergyState] = {}
        # (ts, total energy mJ across devices, total power W) per sample, for energy_between().
        self.energy_history: deque[tuple[float, float, float]] = deque(maxlen=history)
        self.history: deque[GpuSnapshot] = deque(maxlen=history)
        self.max_extrapolate_s = max_extrapolate_s
        self._stop = asyncio.Event()

    # --- NVML setup -------------------------------------------------------------------------------

    def _init(self) -> bool:
        if self._ready:
            return True
        if self._reason:
            return False
        try:
            if self._nvml is None:
                self._nvml = load_nvml()
            self._nvml.nvmlInit()
            count = int(self._nvml.nvmlDeviceGetCount())
        except ImportError:
            self._reason = "no NVIDIA GPU (NVML: pynvml not installed; pip install nvidia-ml-py)"
            return False
        except Exception as exc:  # NVMLError subclasses, OSError from a missing libnvidia-ml
            self._reason = f"no NVIDIA GPU (NVML: {_nvml_message(exc)})"
            return False
        if count == 0:
            self._reason = "no NVIDIA GPU (NVML: no devices found)"
            return False
        self._ready = True
        return True

    def close(self) -> None:
        """Shut NVML down if this sampler initialised it."""
        if self._ready and self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except self._error_type():
                pass
        self._ready = False

    def _error_type(self) -> type[BaseException]:
        error = getattr(self._nvml, "NVMLError", None)
        return error if isinstance(error, type) and issubclass(error, BaseException) else OSError

    @property
    def reason(self) -> str:
        """Why there is no GPU data ('' when NVML works or was not tried yet)."""
        return self._reason

    # --- sampling ---------------------------------------------------------------------------------

    def _server_pid(self) -> int | None:
        if self._explicit_pid is not None:
            return self._explicit_pid
        if self._pid is not None and process_rss(self._pid) is not None:
            return self._pid
        self._pid = pid_for_url(self._server_url) if self._server_url else None
        return self._pid

    def sample(self, buffers: Sequence[BufferSizes] = (), ts: float | None = None) -> GpuSnapshot:
        """Take one sample; `buffers` are the server log's buffer sizes, kept as fallback facts."""
        now = time.time() if ts is None else ts
        pid = self._server_pid()
        rss = process_rss(pid) if pid is not None else None
        if not self._init():
            snap = GpuSnapshot(
                ts=now, available=False, reason=self._reason, server_pid=pid, buffers=tuple(buffers),
                process_rss=rss,
            )
            self.history.append(snap)
            return snap
        try:
            devices = tuple(self._device(i, now, pid) for i in range(int(self._nvml.nvmlDeviceGetCount())))
        except self._error_type() as exc:  # e.g. GPU fell off the bus: report it, keep the fallback facts
            snap = GpuSnapshot(
                ts=now, available=False, reason=f"NVML error: {_nvml_message(exc)}", server_pid=pid,
                buffers=tuple(buffers), process_rss=rss,
            )
            self.history.append(snap)
            return snap
        vram = [d.process_vram for d in devices if d.process_vram is not None]
        snap = GpuSnapshot(
            ts=now,
            available=True,
            devices=devices,
            server_pid=pid,
            server_process_vram=sum(vram) if vram else None,
            buffers=tuple(buffers),
            process_rss=rss,
        )
        energy = [d.energy_mj for d in devices if d.energy_mj is not None]
        power = [d.power_w for d in devices if d.power_w is not None]
        if energy:
            self.energy_history.append((now, sum(energy), sum(power)))
        self.history.append(snap)
        return snap

    def _device(self, index: int, ts: float, pid: int | None) -> GpuDevice:
        nvml, err = self._nvml, self._error_type()
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = _call(err, nvml.nvmlDeviceGetName, handle)
        memory = _call(err, nvml.nvmlDeviceGetMemoryInfo, handle)
        util = _call(err, nvml.nvmlDeviceGetUtilizationRates, handle)
        power_mw = _call(err, nvml.nvmlDeviceGetPowerUsage, handle)
        limit_mw = _call(err, nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        counter_mj = _call(err, nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
        power_w = power_mw / 1000.0 if power_mw is not None else None
        energy, source = self._energy_for(index, ts, power_w, counter_mj)
        return GpuDevice(
            index=index,
            name=name.decode() if isinstance(name, bytes) else str(name or f"GPU {index}"),
            mem_used=int(memory.used) if memory is not None else 0,
            mem_total=int(memory.total) if memory is not None else 0,
            util_pct=float(util.gpu) if util is not None else None,
            power_w=power_w,
            power_limit_w=limit_mw / 1000.0 if limit_mw is not None else None,
            energy_mj=energy,
            energy_source=source,
            process_vram=self._process_vram(handle, pid),
        )

    def _energy_for(
        self, index: int, ts: float, power_w: float | None, counter_mj: Any
    ) -> tuple[float | None, Any]:
        if counter_mj is not None:
            return float(counter_mj), "counter"
        state = self._energy.setdefault(index, _EnergyState())
        if power_w is None:
            return None, "none"
        if state.last_ts is not None and state.last_power_w is not None and ts > state.last_ts:
            # Trapezoid rule between samples: W * s = J, * 1000 = mJ.
            state.integrated_mj += (state.last_power_w + power_w) / 2 * (ts - state.last_ts) * 1000.0
        state.last_ts, state.last_power_w = ts, power_w
        return state.integrated_mj, "integrated"

    def _process_vram(self, handle: Any, pid: int | None) -> int | None:
        if pid is None:
            return None
        processes = _call(self._error_type(), self._nvml.nvmlDeviceGetComputeRunningProcesses, handle)
        if processes is None:
            return None
        used = [p.usedGpuMemory for p in processes if getattr(p, "pid", None) == pid]
        values = [int(u) for u in used if isinstance(u, int)]
        return sum(values) if values else (0 if not used else None)

    # --- energy -----------------------------------------------------------------------------------

    def _energy_at(self, t: float) -> float | None:
        samples = self.energy_history
        if not samples:
            return None
        first, last = samples[0], samples[-1]
        # Slightly outside the sampled range, extrapolate with the edge sample's power draw.
        if t <= first[0]:
            gap = first[0] - t
            return first[1] - first[2] * gap * 1000.0 if gap <= self.max_extrapolate_s else None
        if t >= last[0]:
            gap = t - last[0]
            return last[1] + last[2] * gap * 1000.0 if gap <= self.max_extrapolate_s else None
        for (t_a, e_a, _), (t_b, e_b, _) in zip(samples, list(samples)[1:], strict=False):
            if t_a <= t <= t_b:
                return e_a if t_b == t_a else e_a + (e_b - e_a) * (t - t_a) / (t_b - t_a)
        return None

    def energy_between(self, t0: float, t1: float) -> float | None:
        """Joules used by all GPUs between two epoch times (interpolated; None when not covered)."""
        if t1 < t0:
            return None
        start, end = self._energy_at(t0), self._energy_at(t1)
        if start is None or end is None:
            return None
        return max(0.0, (end - start) / 1000.0)

    def tokens_per_joule(self, tokens: int, t0: float, t1: float) -> float | None:
        """Tokens per joule of GPU energy over a request window."""
        joules = self.energy_between(t0, t1)
        return tokens / joules if joules else None

    # --- loop -------------------------------------------------------------------------------------

    async def run(
        self,
        callback: GpuCallback,
        interval: float = 2.0,
        buffers: Callable[[], Sequence[BufferSizes]] | None = None,
    ) -> None:
        """Sample every `interval` seconds in a worker thread until `stop()`."""
        self._stop.clear()
        while not self._stop.is_set():
            snap = await asyncio.to_thread(self.sample, buffers() if buffers else ())
            result = callback(snap)
            if inspect.isawaitable(result):
                await result
            await wait_set(self._stop, interval)

    def stop(self) -> None:
        """End `run` after the current sample."""
        self._stop.set()


def _call(error: type[BaseException], func: Any, *args: Any) -> Any:
    try:
        return func(*args)
    except error:  # NVMLError_NotSupported and friends: this reading is unavailable
        return None


def _nvml_message(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__
