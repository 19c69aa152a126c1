"""Progress without a terminal (CI, services): periodic log lines with done, remaining and ETA."""

from __future__ import annotations

import logging

from device_agents.progress import OpProgress


def test_progress_logs_done_remaining_and_eta_when_not_a_terminal(caplog):
    caplog.set_level(logging.INFO, logger="device_agents")
    with OpProgress(0, "agent x", log_every_s=0.0) as progress:  # pytest's stderr is not a TTY
        progress.set_remaining(4)
        progress.advance()
        progress.advance(failed=True)
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0].startswith("agent x: done 1 (failed 0), remaining 3,")
    assert lines[1].startswith("agent x: done 2 (failed 1), remaining 2,")
    assert "ETA unknown" not in lines[1] and lines[1].endswith(" s")
    assert len(lines) == 2  # the closing line would only repeat the last one
