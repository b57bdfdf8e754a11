"""An output folder one command writes is refused to a second writer, naming the holder; a claimed run is
skipped by everyone else; both are released when their holder is done."""

from __future__ import annotations

import os

import pytest

from mhc_mup._locks import FOLDER_LOCK, claim, exclusive_folder, one_at_a_time
from mhc_mup.errors import FolderBusyError


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    with exclusive_folder(out):
        assert out.is_dir()
        busy = rf"'{out}' is being written by process {os.getpid()} on "
        with pytest.raises(FolderBusyError, match=busy), exclusive_folder(out):
            pass
    with exclusive_folder(out):  # released: the next writer gets it
        pass
    assert not out.exists()  # the lock's files are gone, and so is the folder it created, empty


def test_a_folder_created_for_a_block_that_failed_is_removed(tmp_path):
    with pytest.raises(RuntimeError), exclusive_folder(tmp_path / "new"):
        raise RuntimeError("bad input found late")
    assert not (tmp_path / "new").exists()
    assert FOLDER_LOCK == ".mhc-mup.lock"


def test_a_missing_folder_is_not_created_when_asked_not_to(tmp_path):
    with exclusive_folder(tmp_path / "absent", create=False):
        pass
    assert not (tmp_path / "absent").exists()


def test_a_claim_is_held_once_and_released(tmp_path):
    target = tmp_path / "runs" / "a.json"
    with claim(target) as mine:
        assert mine
        with claim(target) as theirs:
            assert not theirs
    assert not (tmp_path / "runs" / "a.json.claim").exists()
    with claim(target) as again:
        assert again


def test_one_at_a_time_times_out_with_one_line(tmp_path):
    lock = tmp_path / ".x.lock"
    busy = pytest.raises(FolderBusyError, match=r"stayed locked for 0\.1 s")
    with one_at_a_time(lock), busy, one_at_a_time(lock, timeout=0.1):
        pass
