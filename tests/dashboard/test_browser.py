"""The dashboard in real headless Chromium: DOM content and a screenshot of a populated server.

State is built through the real protocol: the FBNet space's manifest (`fbnet_core.space_manifest`), its ops
uploaded, jobs queued, a stand-in agent answering most tasks (two failures, some left queued), and a validation
run. Chromium is Debian's package (`.ci/run` installs it).
"""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

from PIL import Image, ImageStat

from fbnet_core.space import fbnet_space
from fbnet_core.space_manifest import space_manifest, space_name
from tests.dashboard.helpers import StandInAgent, upload_ops

CHROMIUM = "/usr/bin/chromium"
WINDOW = (1280, 2000)
DEVICE = "cpu-standin-agent"
ZOO = ["fbnet_a", "fbnet_b", "fbnet_c", "mobilenetv2_1.0"]
RANDOM_NETWORKS = 16
# Set to a folder (docs/img) to keep a compact copy of the device page's screenshot.
SCREENSHOT_DIR_ENV = "FBNET_DASHBOARD_SCREENSHOT_DIR"


def chromium(url: str, user_data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={user_data_dir}", f"--window-size={WINDOW[0]},{WINDOW[1]}", *extra, url]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)


def validation_points() -> list[dict[str, object]]:
    """Predictions a few percent off measurements that span 8-40 ms, deterministic; randoms split fit/holdout."""
    points = []
    names = ZOO + [f"random_{i:02d}" for i in range(RANDOM_NETWORKS)]
    for i, name in enumerate(names):
        measured_us = 8000.0 + 1700.0 * ((i * 7) % len(names))
        predicted_us = measured_us * (1.0 + 0.06 * math.sin(1.7 * i) - 0.01)
        split = None if name in ZOO else ("fit" if i % 2 else "holdout")
        points.append({"name": name, "kind": "zoo" if name in ZOO else "random", "key": f"net.r224.{i:016x}",
                       "predicted_us": predicted_us, "measured_us": measured_us, "split": split})  # fmt: skip
    return points


def populate(server) -> tuple[dict, list[str], list[str], list[str]]:
    """Register the device, the FBNet space and its ops; let the stand-in agent answer most tasks."""
    admin = server.client(server.admin_token)
    token = server.client(server.enroll_token).register_device(DEVICE, "linux-x86_64").token
    space = fbnet_space()
    manifest = space_manifest(space)
    admin.put_space(space_name(space.params), manifest)
    keys = list(
        dict.fromkeys(manifest["fixed_keys"] + [k for layer in manifest["layers"] for k in layer if k])
    )
    upload_ops(admin, keys)
    failing, left_queued = [keys[20], keys[41]], [keys[60], keys[75], keys[90]]
    admin.create_jobs(DEVICE, [k for k in keys if k not in left_queued])
    StandInAgent(server.client(token)).work(max_tasks=len(keys), fail=failing)
    admin.create_jobs(DEVICE, left_queued)  # still waiting for an agent
    calibration = {"method": "linear", "slope": 0.991, "intercept_us": 41.5}
    admin.post_validation(DEVICE, {"space": space_name(space.params), "label": "LUT sum vs end to end",
                                   "points": validation_points(), "calibration": calibration})  # fmt: skip
    return manifest, keys, failing, left_queued


def test_dashboard_in_headless_chromium(live_server_factory, tmp_path):
    server = live_server_factory("sqlite")
    manifest, keys, failing, left_queued = populate(server)
    profile = tmp_path / "chromium-profile"
    device_url = f"{server.url}/dashboard/devices/{DEVICE}"

    index_dom = chromium(f"{server.url}/", profile, "--dump-dom").stdout
    assert f'data-device="{DEVICE}"' in index_dom
    measured = len(keys) - len(left_queued) - len(failing)
    assert f"{measured}/{len(keys)}" in index_dom  # coverage of the FBNet space
    assert all(failed_key in index_dom for failed_key in failing)  # recent failures, with their reasons
    assert "not supported &amp; skipped" in index_dom

    dom = chromium(device_url, profile, "--dump-dom").stdout
    cells = dom.count('<td class="cell ')
    identity = sum(key is None for layer in manifest["layers"] for key in layer)
    assert cells == 22 * 9
    assert dom.count('data-state="identity"') == identity > 0
    for state, state_keys in (("failed", failing), ("queued", left_queued)):
        expected = sum(k in state_keys for layer in manifest["layers"] for k in layer)
        assert expected > 0 and dom.count(f'<td class="cell {state}"') == expected
    assert 'class="scatter"' in dom and dom.count('<circle class="point') == len(validation_points())
    assert "Kendall τ" in dom and "Held out" in dom and "LUT sum vs end to end" in dom
    block_key = next(k for k in keys if k.startswith("blk.") and k not in failing)
    assert f'data-key="{block_key}"' in dom
    assert server.admin_token not in dom and server.enroll_token not in dom

    screenshot = tmp_path / "device.png"
    chromium(device_url, profile, f"--screenshot={screenshot}", "--hide-scrollbars")
    with Image.open(screenshot) as image:
        assert image.format == "PNG" and image.size == WINDOW
        rgb = image.convert("RGB")
        # A rendered page, not a blank one: many colours (heat map, plot) and real contrast.
        assert len(rgb.getcolors(maxcolors=1 << 20) or []) > 200
        assert max(ImageStat.Stat(rgb.convert("L")).stddev) > 20
        docs_dir = os.environ.get(SCREENSHOT_DIR_ENV)
        if docs_dir:  # regenerating the docs' screenshot (docs/dashboard.md)
            rgb.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(
                Path(docs_dir) / "dashboard-device.png", optimize=True
            )
