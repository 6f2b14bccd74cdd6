"""Writing files: atomic_write keeps the old file on any failure (and leaves no temporary file),
format_from_suffix reads a format off a path, require_dot says how to install Graphviz."""
import os
import re
from pathlib import Path

import numpy as np
import pytest

from tinygrad_cnn import viz
from tinygrad_cnn.files import DotNotFoundError, atomic_write, format_from_suffix, require_dot


class DiskFull(Exception):
    pass


def old_file(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    return path


@pytest.mark.parametrize("begin", [lambda f: f.write(b"half of the new"), lambda f: os.unlink(f.name)],
                         ids=["half-written", "temporary-file-removed-by-the-writer"])
def test_a_failed_write_keeps_the_old_file_raises_its_own_error_and_leaves_no_temporary_file(tmp_path, begin):
    path = old_file(tmp_path)
    with pytest.raises(DiskFull):
        with atomic_write(path) as f:
            begin(f)
            raise DiskFull
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


def test_no_folder_is_the_open_error_with_nothing_written(tmp_path):
    with pytest.raises(FileNotFoundError):
        with atomic_write(tmp_path / "nowhere" / "out.bin"):
            pass
    assert os.listdir(tmp_path) == []


def test_text_replaces_the_old_file_as_utf8_with_a_normal_files_mode(tmp_path):
    path = old_file(tmp_path)
    with atomic_write(path, "w") as f:
        f.write("dL/dz = a − y ×\n")
    assert path.read_bytes() == "dL/dz = a − y ×\n".encode("utf-8") and os.listdir(tmp_path) == ["out.bin"]
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask


def test_a_writer_that_takes_a_file_name_writes_to_f_name(tmp_path):
    path = tmp_path / "numbers.txt"
    with atomic_write(str(path)) as f:
        np.savetxt(f.name, np.eye(2))
    assert np.array_equal(np.loadtxt(path), np.eye(2)) and os.listdir(tmp_path) == ["numbers.txt"]


def test_a_picture_in_a_format_matplotlib_cannot_write_reports_matplotlibs_error(tmp_path):
    plots = pytest.importorskip("tinygrad_cnn.plots", exc_type=ImportError)
    with pytest.raises(ValueError, match="Format 'xyz' is not supported"):
        plots.draw_maps(tmp_path / "m.xyz", [[("x", np.eye(2))]])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("path, format", [("g.svg", "svg"), ("G.PNG", "png"), (Path("a/b.pdf"), "pdf"),
                                          ("a.b/g.dot", "dot"), ("g.jpg", "jpg"), ("g.JPEG", "jpg"), ("g.gv", "dot")])
def test_format_from_suffix(path, format):
    assert format_from_suffix(path) == format
    assert format_from_suffix(path, default="svg") == format


@pytest.mark.parametrize("path, named", [("g.gif", ".gif"), ("graph", "(none)"), ("a.svg/graph", "(none)")])
def test_format_from_suffix_refuses_other_suffixes_unless_given_a_default(path, named):
    with pytest.raises(ValueError, match=re.escape(f"the suffix {named} names no format; expected one of "
                                                   ".svg, .png, .pdf, .jpg, .dot")):
        format_from_suffix(path)
    assert format_from_suffix(path, default="svg") == "svg"


def test_format_from_suffix_takes_the_formats_to_allow():
    assert format_from_suffix("m.jpg", ("png", "jpg")) == "jpg"
    with pytest.raises(ValueError, match=r"g\.svg: the suffix \.svg names no format; expected one of \.png$"):
        format_from_suffix("g.svg", ("png",))


def test_require_dot_says_how_to_install_graphviz(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(DotNotFoundError) as e:
        require_dot("png", instead="or leave it out")
    message = str(e.value)
    assert "'dot' program is not on PATH; it draws the png picture" in message
    assert all(f"{tool} install graphviz" in message for tool in ("apt-get", "brew", "dnf"))
    assert message.endswith("; or leave it out") and viz.DotNotFoundError is DotNotFoundError
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    require_dot()  # found: no error
