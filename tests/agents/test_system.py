"""Host description and sensor readers, on a real directory tree laid out like Linux's /sys."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_agents.system import cpu_model, describe_host, parse_cpu_list, read_sensors


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def test_sensors_are_read_from_thermal_zones_hwmon_and_cpufreq(tmp_path: Path):
    _write(tmp_path, "class/thermal/thermal_zone0/type", "x86_pkg_temp")
    _write(tmp_path, "class/thermal/thermal_zone0/temp", "48000")
    _write(tmp_path, "class/thermal/thermal_zone1/type", "acpitz")
    _write(tmp_path, "class/thermal/thermal_zone1/temp", "-1500")
    _write(tmp_path, "class/hwmon/hwmon0/name", "k10temp")
    _write(tmp_path, "class/hwmon/hwmon0/temp1_input", "52125")
    _write(tmp_path, "class/hwmon/hwmon0/temp1_label", "Tctl")
    _write(tmp_path, "class/hwmon/hwmon0/temp2_input", "50000")
    for cpu, khz in ((0, 2900000), (1, 1400000), (10, 2200000)):
        _write(tmp_path, f"devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq", str(khz))
        _write(tmp_path, f"devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor", "schedutil")
    readings = read_sensors(tmp_path)
    assert readings.temperatures_c == {
        "x86_pkg_temp": 48.0,
        "acpitz": -1.5,
        "k10temp.Tctl": 52.125,
        "k10temp.temp2": 50.0,
    }
    assert readings.cpu_freq_mhz == {"cpu0": 2900.0, "cpu1": 1400.0, "cpu10": 2200.0}
    assert list(readings.cpu_freq_mhz) == ["cpu0", "cpu1", "cpu10"]  # numeric, not lexical, order
    assert readings.cpu_governors == {"cpu0": "schedutil", "cpu1": "schedutil", "cpu10": "schedutil"}


def test_missing_or_unreadable_sensors_are_none_not_invented(tmp_path: Path):
    _write(tmp_path, "class/thermal/thermal_zone0/type", "battery")
    _write(tmp_path, "class/thermal/thermal_zone0/temp", "")  # some zones read empty or fail with EIO
    readings = read_sensors(tmp_path)
    assert readings.temperatures_c is None
    assert readings.cpu_freq_mhz is None
    assert readings.cpu_governors is None


def test_cpu_model_reads_x86_and_arm_cpuinfo(tmp_path: Path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 38.40\n\nHardware\t: Qualcomm Technologies, Inc MSM8998\n")
    assert cpu_model(x86) == "AMD EPYC 7B13"
    assert cpu_model(arm) == "Qualcomm Technologies, Inc MSM8998"


def test_describe_host_is_this_machine():
    host = describe_host()
    assert host.cpu_cores >= 1 and host.platform.startswith(("linux", "darwin", "windows"))
    assert host.as_dict()["agent_version"] == "0.1.0"


def test_cpu_lists_use_the_taskset_syntax():
    assert parse_cpu_list("0-2,5") == [0, 1, 2, 5]
    assert parse_cpu_list("4-7") == [4, 5, 6, 7]
    for bad in ("", "a", "3-1", "-1"):
        with pytest.raises(ValueError, match="not a CPU list"):
            parse_cpu_list(bad)
