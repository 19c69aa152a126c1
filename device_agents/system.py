"""What this host is, and what its sensors say now: recorded with every measurement.

Sensors are read only where the OS exposes them (Linux sysfs); anything missing is None, never invented.
The sysfs root is a parameter so the readers are tested on a real directory tree laid out like /sys.
"""

from __future__ import annotations

import os
import platform
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

try:
    import resource
except ImportError:  # Windows: no getrusage, so no preemption detection
    resource = None  # type: ignore[assignment]

from device_agents import AGENT_VERSION
from device_agents.errors import BackendUnavailableError

SYS_ROOT = Path("/sys")


@dataclass(frozen=True)
class HostDescription:
    hostname: str
    platform: str  # e.g. "linux-x86_64"
    os: str  # e.g. "Linux 6.8.0"
    cpu_model: str | None
    cpu_cores: int
    python_version: str
    agent_version: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's marketing name (x86 'model name', Arm 'Hardware'/'Processor'), else the ISA name."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return platform.processor() or None
    for field in ("model name", "Hardware", "Processor"):
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == field and value.strip():
                return value.strip()
    return platform.processor() or None


def describe_host() -> HostDescription:
    return HostDescription(
        hostname=socket.gethostname(),
        platform=f"{platform.system().lower()}-{platform.machine().lower()}",
        os=f"{platform.system()} {platform.release()}",
        cpu_model=cpu_model(),
        cpu_cores=os.cpu_count() or 1,
        python_version=platform.python_version(),
        agent_version=AGENT_VERSION,
    )


def current_affinity() -> list[int] | None:
    """The CPUs this process may run on (None where the OS has no affinity call, e.g. macOS)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return sorted(os.sched_getaffinity(0))


def set_affinity(cpus: list[int]) -> None:
    """Pin this process (and the runtime threads it starts afterwards) to `cpus`."""
    if not hasattr(os, "sched_setaffinity"):
        raise BackendUnavailableError("CPU affinity is not supported on this OS (Linux and Android only)")
    try:
        os.sched_setaffinity(0, set(cpus))
    except OSError as exc:
        raise BackendUnavailableError(f"cannot pin to CPUs {cpus}: {exc.strerror} (this host has {os.cpu_count()})") from exc


def involuntary_switches() -> int:
    """Involuntary context switches of this process so far (0 where the OS does not count them).

    Process-wide (RUSAGE_SELF) so that a runtime's pool threads count too."""
    if resource is None:
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw


def parse_cpu_list(text: str) -> list[int]:
    """'0-2,5' -> [0, 1, 2, 5] (the taskset/cgroup syntax)."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, sep, high = part.partition("-")
        try:
            first, last = int(low), int(high) if sep else int(low)
        except ValueError as exc:
            raise ValueError(f"not a CPU list: {text!r} (expected e.g. '0-2,5')") from exc
        if first < 0 or last < first:
            raise ValueError(f"not a CPU list: {text!r} (expected e.g. '0-2,5')")
        cpus.update(range(first, last + 1))
    if not cpus:
        raise ValueError(f"not a CPU list: {text!r} (expected e.g. '0-2,5')")
    return sorted(cpus)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:  # sensors vanish, some zones refuse reads with EINVAL/EIO: treat as absent
        return None


def read_temperatures_c(sys_root: Path = SYS_ROOT) -> dict[str, float] | None:
    """Thermal zones and hwmon sensors in degrees Celsius, keyed by their kernel names."""
    temps: dict[str, float] = {}
    for zone in sorted((sys_root / "class/thermal").glob("thermal_zone*")):
        raw, name = _read(zone / "temp"), _read(zone / "type") or zone.name
        if raw is not None and raw.lstrip("-").isdigit():
            temps[name if name not in temps else f"{name}.{zone.name}"] = int(raw) / 1000.0
    for hwmon in sorted((sys_root / "class/hwmon").glob("hwmon*")):
        chip = _read(hwmon / "name") or hwmon.name
        for sensor in sorted(hwmon.glob("temp*_input")):
            raw = _read(sensor)
            label = _read(sensor.with_name(sensor.name.replace("_input", "_label")))
            if raw is not None and raw.lstrip("-").isdigit():
                temps[f"{chip}.{label or sensor.name.removesuffix('_input')}"] = int(raw) / 1000.0
    return temps or None


def read_cpu_freq_mhz(sys_root: Path = SYS_ROOT) -> dict[str, float] | None:
    """Current frequency of each CPU (cpufreq's scaling_cur_freq is in kHz)."""
    freqs: dict[str, float] = {}
    for cpufreq in (sys_root / "devices/system/cpu").glob("cpu[0-9]*/cpufreq"):
        raw = _read(cpufreq / "scaling_cur_freq")
        if raw is not None and raw.isdigit():
            freqs[cpufreq.parent.name] = int(raw) / 1000.0
    return dict(sorted(freqs.items(), key=lambda item: int(item[0][3:]))) or None


def read_cpu_governors(sys_root: Path = SYS_ROOT) -> dict[str, str] | None:
    """The frequency governor per CPU: 'performance' vs 'schedutil' changes latencies a lot on phones."""
    governors: dict[str, str] = {}
    for cpufreq in (sys_root / "devices/system/cpu").glob("cpu[0-9]*/cpufreq"):
        governor = _read(cpufreq / "scaling_governor")
        if governor:
            governors[cpufreq.parent.name] = governor
    return dict(sorted(governors.items(), key=lambda item: int(item[0][3:]))) or None


@dataclass(frozen=True)
class SensorReadings:
    temperatures_c: dict[str, float] | None
    cpu_freq_mhz: dict[str, float] | None
    cpu_governors: dict[str, str] | None


def read_sensors(sys_root: Path = SYS_ROOT) -> SensorReadings:
    return SensorReadings(
        temperatures_c=read_temperatures_c(sys_root),
        cpu_freq_mhz=read_cpu_freq_mhz(sys_root),
        cpu_governors=read_cpu_governors(sys_root),
    )
