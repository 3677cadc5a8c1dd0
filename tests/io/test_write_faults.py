"""The one writer under faults: the whole file under its name, or an error and nothing.

One table of cases (issue 21, "nothing lost"): a full disk (a real 64 kB tmpfs),
a short write, an error half-way, a process killed half-way, a file that does
not read back, an empty file, writing over an input, a refused overwrite, a
read-only folder, name collisions after sanitising, the umask; and the checked
``os.pwrite`` of scratch files. Each case asserts the error type, the row and
file named, that nothing is left under the final name (nor a temporary file),
and that a file already there keeps its bytes.
"""

import errno
import os
import stat

import pytest

from sklearn_medprep.exceptions import OutputWriteError
from sklearn_medprep.io import (
    commit_all,
    file_mode,
    output_names,
    pwrite_all,
    stage_file,
    write_atomically,
)

PAYLOAD = bytes(range(256)) * 800  # 200 kB, more than the 64 kB tmpfs holds


def _write_bytes(data):
    def write(tmp):
        with open(tmp, "wb") as handle:
            handle.write(data)
        return len(data)

    return write


def _short(tmp):
    with open(tmp, "wb") as handle:
        handle.write(b"x" * 50)
    return 100  # meant 100 bytes, 50 reached the file


def _fails_half_way(tmp):
    with open(tmp, "wb") as handle:
        handle.write(b"x" * 100)
    raise RuntimeError("wrote only 4096 of 6720 bytes")


class _Killed(BaseException):
    """Stands for the process being killed (not an Exception: never wrapped)."""


def _killed_half_way(tmp):
    with open(tmp, "wb") as handle:
        handle.write(b"x" * 100)
    raise _Killed


def _empty(tmp):
    open(tmp, "wb").close()


def _bad_header(tmp):
    return "header announces 6720 bytes, file holds 4096"


# case id -> (writer, keyword arguments, expected error, text in the message, errno)
CASES = {
    "short write": (_short, {}, OutputWriteError, "50 of 100 bytes", None),
    "error half-way": (
        _fails_half_way, {}, OutputWriteError, "wrote only 4096 of 6720", None,
    ),
    "killed half-way": (_killed_half_way, {}, _Killed, None, None),
    "empty file": (_empty, {}, OutputWriteError, "0 bytes reached the disk", None),
    "does not read back": (
        _write_bytes(b"abc"), {"check": _bad_header}, OutputWriteError,
        "header announces 6720 bytes", None,
    ),
    "check raises": (
        _write_bytes(b"abc"), {"check": lambda tmp: 1 / 0}, OutputWriteError,
        "ZeroDivisionError", None,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("existing", [False, True], ids=["new", "over-existing"])
def test_fault_leaves_nothing_under_the_final_name(tmp_path, case, existing):
    write, kwargs, error, text, code = CASES[case]
    target = tmp_path / "out.csv"
    if existing:
        target.write_bytes(b"old content")
    with pytest.raises(error) as info:
        write_atomically(target, write, row="sub-07", **kwargs)
    if error is OutputWriteError:
        assert info.value.row == "sub-07" and info.value.file == str(target)
        assert "[row 'sub-07', file " in str(info.value)
        assert text in str(info.value)
        assert info.value.errno == code
        assert isinstance(info.value, OSError)
    # nothing under the final name but what was there; no temporary file left
    assert sorted(os.listdir(tmp_path)) == (["out.csv"] if existing else [])
    if existing:
        assert target.read_bytes() == b"old content"


def test_success_writes_the_bytes_with_the_umask_mode(tmp_path):
    target = tmp_path / "sub" / "out.bin"  # folder created
    old = os.umask(0o027)
    try:
        assert write_atomically(target, _write_bytes(PAYLOAD)) == str(target)
        mode = stat.S_IMODE(os.stat(target).st_mode)
        assert mode == 0o640 == file_mode()
    finally:
        os.umask(old)
    assert target.read_bytes() == PAYLOAD
    assert os.listdir(target.parent) == ["out.bin"]


@pytest.mark.parametrize(
    "umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)]
)
def test_file_mode_follows_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_atomically(tmp_path / "f.csv", _write_bytes(b"a,b\n"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "f.csv").st_mode) == mode


@pytest.mark.parametrize("existing", [False, True], ids=["new", "over-existing"])
def test_full_disk_is_a_named_enospc_error(tmpfs, existing):
    folder = tmpfs("64k")
    target = folder / "features.csv"
    if existing:
        target.write_bytes(b"old")
    with pytest.raises(OutputWriteError) as info:
        write_atomically(target, _write_bytes(PAYLOAD), row=3)
    assert info.value.errno == errno.ENOSPC
    assert info.value.row == 3 and info.value.file == str(target)
    assert "the disk is full" in str(info.value)
    assert sorted(os.listdir(folder)) == (["features.csv"] if existing else [])
    if existing:
        assert target.read_bytes() == b"old"
    # the space is given back: a file that fits is then written in full
    write_atomically(target, _write_bytes(PAYLOAD[:10_000]))
    assert target.read_bytes() == PAYLOAD[:10_000]


def test_full_disk_when_the_writer_ignores_its_own_short_write(tmpfs, fill_disk):
    # a writer (ITK) that swallows ENOSPC and returns normally: the announced
    # byte count catches it
    folder = tmpfs("64k")
    fill_disk(folder, leave=8192)

    def swallowing(tmp):
        with open(tmp, "wb", buffering=0) as handle:
            try:
                handle.write(PAYLOAD[:20_000])
            except OSError:
                pass
        return 20_000

    with pytest.raises(OutputWriteError, match="of 20000 bytes") as info:
        write_atomically(folder / "a.nii", swallowing, row="r")
    assert info.value.file == str(folder / "a.nii")
    assert sorted(os.listdir(folder)) == ["filler.bin"]


def test_read_only_folder_is_named(tmpfs):
    folder = tmpfs("64k", readonly=True)
    with pytest.raises(OutputWriteError, match="no file can be created") as info:
        write_atomically(folder / "out.csv", _write_bytes(b"a"), row="s1")
    assert info.value.errno == errno.EROFS
    assert info.value.file == str(folder / "out.csv")


@pytest.mark.parametrize("how", ["same name", "dot-dot", "symlink", "hard link"])
def test_writing_over_an_input_is_refused_before_writing(tmp_path, how):
    source = tmp_path / "in" / "img.nii.gz"
    source.parent.mkdir()
    source.write_bytes(b"input bytes")
    target = {
        "same name": source,
        "dot-dot": tmp_path / "in" / ".." / "in" / "img.nii.gz",
        "symlink": tmp_path / "link.nii.gz",
        "hard link": tmp_path / "hard.nii.gz",
    }[how]
    if how == "symlink":
        target.symlink_to(source)
    elif how == "hard link":
        os.link(source, target)
    called = []
    with pytest.raises(OutputWriteError, match="would write over the input") as info:
        write_atomically(target, lambda tmp: called.append(tmp), row="s2",
                         inputs=[str(source)])
    assert called == [] and info.value.row == "s2"
    assert source.read_bytes() == b"input bytes"


def test_overwrite_false_keeps_the_existing_file(tmp_path):
    target = tmp_path / "out.csv"
    target.write_bytes(b"old")
    with pytest.raises(OutputWriteError, match="exists already") as info:
        write_atomically(target, _write_bytes(b"new"), overwrite=False, row=1)
    assert info.value.errno == errno.EEXIST
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.csv"]
    # a file appearing between the stage and the rename is not replaced either
    other = tmp_path / "race.csv"
    staged = stage_file(other, _write_bytes(b"new"), overwrite=False)
    other.write_bytes(b"theirs")
    with pytest.raises(OutputWriteError, match="exists already"):
        staged.commit()
    assert other.read_bytes() == b"theirs"
    assert sorted(os.listdir(tmp_path)) == ["out.csv", "race.csv"]


def test_image_writer_gets_a_temporary_name_with_the_real_suffix(tmp_path):
    seen = []
    write_atomically(tmp_path / "s.nii.gz",
                     lambda tmp: seen.append(tmp) or open(tmp, "wb").write(b"x"),
                     suffix=".nii.gz")
    name = os.path.basename(seen[0])
    assert name.startswith(".s.nii.gz.") and name.endswith(".nii.gz")
    assert os.path.dirname(seen[0]) == str(tmp_path)


def test_commit_all_is_all_or_nothing(tmp_path):
    good = stage_file(tmp_path / "a.csv", _write_bytes(b"a"))
    with pytest.raises(OutputWriteError):
        stage_file(tmp_path / "b.csv", _short, row="b")
    taken = tmp_path / "c.csv"
    refused = stage_file(taken, _write_bytes(b"c"), overwrite=False)
    taken.write_bytes(b"old")  # someone else's file appears before the rename
    late = stage_file(tmp_path / "d.csv", _write_bytes(b"d"))
    with pytest.raises(OutputWriteError, match="exists already"):
        commit_all([good, refused, late])
    # the renamed file is complete, the others left no temporary file
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "c.csv"]
    assert taken.read_bytes() == b"old"


@pytest.mark.parametrize(
    "labels, names, message",
    [
        (["a b", "a/b"], None,
         "rows 'a b' and 'a/b' would both be written to 'a_b.nii"),
        (["a/b", "a:b"], None, "rows 'a/b' and 'a:b'"),
        (["Sub", "sub"], None, "differing only in case"),
        ([1, "1"], None, "rows 1 and '1'"),
        (["..", "x"], None, "hidden or empty"),
        ([".hidden"], None, "hidden or empty"),
        (["sub-01", "sub 02", 3], ["sub-01.nii", "sub_02.nii", "3.nii"], None),
    ],
)
def test_output_names_unique_after_sanitising(labels, names, message):
    if message is None:
        assert output_names(labels, ".nii") == names
        return
    with pytest.raises(OutputWriteError, match=message.replace(".", r"\.")):
        output_names(labels, ".nii")


def test_pwrite_all_loops_on_partial_writes(tmp_path, monkeypatch):
    path = tmp_path / "scratch.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    real = os.pwrite
    calls = []

    def three_at_a_time(fd_, data, offset):
        calls.append(offset)
        return real(fd_, bytes(data[:3]), offset)

    monkeypatch.setattr(os, "pwrite", three_at_a_time)
    try:
        assert pwrite_all(fd, b"0123456789", 5, file=str(path)) == 10
    finally:
        os.close(fd)
    assert calls == [5, 8, 11, 14]
    assert path.read_bytes() == b"\0" * 5 + b"0123456789"


def test_pwrite_all_no_progress_is_an_error(tmp_path, monkeypatch):
    fd = os.open(tmp_path / "s.bin", os.O_RDWR | os.O_CREAT)
    monkeypatch.setattr(os, "pwrite", lambda fd_, data, offset: 0)
    try:
        with pytest.raises(OutputWriteError, match="only 0 of 4 bytes") as info:
            pwrite_all(fd, b"abcd", 0, file="s.bin", row="r9")
    finally:
        os.close(fd)
    assert info.value.row == "r9" and info.value.file == "s.bin"
    assert info.value.errno == errno.ENOSPC


def test_pwrite_all_on_a_full_disk_names_file_and_row(tmpfs):
    folder = tmpfs("64k")
    path = folder / "voxels.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(OutputWriteError, match="the disk is full") as info:
            pwrite_all(fd, PAYLOAD, 0, file=str(path), row="sub-3")
    finally:
        os.close(fd)
    assert info.value.errno == errno.ENOSPC
    assert info.value.row == "sub-3" and info.value.file == str(path)
    assert "of 204800 bytes were written to the scratch file" in str(info.value)


def test_error_pickles_with_its_errno():
    import pickle

    error = OutputWriteError("x", row="a", file="f", errno=errno.ENOSPC)
    back = pickle.loads(pickle.dumps(error))
    assert (back.row, back.file, back.errno, str(back)) == (
        "a", "f", errno.ENOSPC, str(error))


# ---------------------------------------------------------------- the writers
def _manifest(folder):
    import pandas as pd

    n = 4000  # over 100 kB of CSV, also with the paths made relative
    return pd.DataFrame(
        {"image": [str(folder / f"img{k}.nii.gz") for k in range(n)],
         "age": range(n), "volume": [k / 7 for k in range(n)]},
        index=[f"sub-{k:04d}" for k in range(n)],
    )


def _cli_csv(table, path):
    from sklearn_medprep._cli import _write_atomically

    return _write_atomically(table, path, "csv")


def _manifest_csv(table, path):
    from sklearn_medprep import write_manifest

    return write_manifest(table, path)


@pytest.mark.parametrize("writer", [_cli_csv, _manifest_csv], ids=["cli", "manifest"])
def test_library_writers_on_a_full_disk(tmpfs, writer):
    folder = tmpfs("64k")
    table = _manifest(folder)
    (folder / "old.csv").write_bytes(b"old")
    with pytest.raises(OutputWriteError, match="the disk is full") as info:
        writer(table, folder / "old.csv")
    assert info.value.errno == errno.ENOSPC
    assert info.value.file == str(folder / "old.csv")
    assert os.listdir(folder) == ["old.csv"]
    assert (folder / "old.csv").read_bytes() == b"old"


@pytest.mark.parametrize("writer", [_cli_csv, _manifest_csv], ids=["cli", "manifest"])
def test_library_writers_give_the_umask_mode(tmp_path, writer):
    import pandas as pd

    old = os.umask(0o022)
    try:
        writer(_manifest(tmp_path).head(3), tmp_path / "t.csv")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "t.csv").st_mode) == 0o644
    back = pd.read_csv(tmp_path / "t.csv", index_col=0)
    assert back["age"].tolist() == [0, 1, 2]
    assert os.listdir(tmp_path) == ["t.csv"]


def test_write_manifest_over_its_own_image_is_refused(tmp_path):
    from sklearn_medprep import write_manifest

    table = _manifest(tmp_path).head(2)
    image = tmp_path / "img1.nii.gz"
    image.write_bytes(b"image bytes")
    with pytest.raises(OutputWriteError, match="would write over the input"):
        write_manifest(table, image)
    assert image.read_bytes() == b"image bytes"


def test_process_killed_half_way_leaves_no_file_under_the_name(tmp_path):
    import signal
    import subprocess
    import sys

    target = tmp_path / "out.csv"
    target.write_bytes(b"old run")
    script = f"""
import sys, time
from sklearn_medprep.io import write_atomically
def write(tmp):
    with open(tmp, "wb") as handle:
        handle.write(b"half of the rows")
        handle.flush()
    print("half", flush=True)
    time.sleep(60)
write_atomically({str(target)!r}, write)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "half"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"old run"  # the final name was never touched
    left = sorted(os.listdir(tmp_path))
    # only the hidden temporary file (documented: safe to delete)
    assert left[1] == "out.csv" and left[0].startswith(".out.csv.")
    assert left[0].endswith(".part") and len(left) == 2
