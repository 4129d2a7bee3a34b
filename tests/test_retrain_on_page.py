"""Retrain errors and texts as the Retrain & rounds tab shows them: no server pid, folder or shell command; the command
line keeps them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_loop_tab import RecordingPanel

from kard.annotations import AnnotationStore
from kard.errors import page_text
from kard.loop import round_folder
from kard.ui.studio import Studio


def test_a_second_retrain_is_told_of_the_running_job_and_the_cancel_button_not_its_pid_or_folder(tmp_path):
    root = tmp_path / "rounds"
    with round_folder.RoundsLock(root, "job-one"):
        with pytest.raises(round_folder.RetrainBusyError) as caught:
            round_folder.RoundsLock(root, "job-two").acquire()
    cli, page = str(caught.value), page_text(caught.value)
    assert f"pid {os.getpid()}" in cli and f"--root {root} --cancel" in cli  # the command line keeps them
    assert "job job-one (since " in page and "Cancel button" in page
    assert str(os.getpid()) not in page and str(tmp_path) not in page and "python -m" not in page


def test_the_retrain_tab_names_no_server_folder_before_a_report(tmp_path: Path):
    store = AnnotationStore(tmp_path / "a.db")
    panel = RecordingPanel(Studio(lambda: None, store, [], mode="curator"), tmp_path / "rounds",
                           base_student="base-student", db=tmp_path / "a.db")
    text = panel.report_markdown()
    assert "No round report yet" in text and str(tmp_path) not in text and "KARD_ROUNDS_DIR" in text
