"""The attachment checksum memo: a file unchanged since it was hashed or written is not read again,
and any write to it (even one that restores size and mtime) makes it be hashed again."""

import os
import time

from dj_flows.codecs import attach


def test_unchanged_file_is_not_read_again(tmp_path, monkeypatch):
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 1000)
    first = attach.file_uuid(path, "a.bin\0")
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    assert attach.file_uuid(path, "a.bin\0") == first
    assert opened == []


def test_rewrite_with_same_size_and_mtime_is_hashed_again(tmp_path):
    path = tmp_path / "b.bin"
    path.write_bytes(b"x" * 1000)
    before = attach.file_uuid(path, "b.bin\0")
    status = os.stat(path)
    time.sleep(0.01)
    path.write_bytes(b"y" * 1000)  # same size
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))  # same mtime; ctime still moves
    after = attach.file_uuid(path, "b.bin\0")
    assert after != before
    assert after == attach.content_uuid(b"y" * 1000, "b.bin\0")


def test_placed_attachment_is_known_without_hashing(tmp_path):
    data = b"contents" * 100
    checksum = attach.content_uuid(data, "c.txt\0")
    placed = attach.place_attachment("c.txt", checksum, tmp_path, lambda: data)
    assert attach._known_checksums[(os.path.realpath(placed), "c.txt\0")][1] == checksum
    assert attach.place_attachment("c.txt", checksum, tmp_path, lambda: b"never called") == placed


def test_download_folder_knows_only_files_it_hashed_or_wrote(tmp_path):
    """DownloadFolder.known answers without reading any file: a file this process has not hashed
    (or that changed since) is left to find(), which hashes it."""
    data = b"known contents" * 50
    checksum = attach.content_uuid(data, "k.bin\0")
    (tmp_path / "k.bin").write_bytes(data)  # written by someone else
    folder = attach.DownloadFolder(tmp_path)
    assert folder.known("k.bin", checksum) is None
    assert folder.find("k.bin", checksum) == (str(tmp_path / "k.bin"), tmp_path / "k.bin")
    assert folder.known("k.bin", checksum) == str(tmp_path / "k.bin")
    other = attach.content_uuid(b"other", "k.bin\0")
    assert folder.known("k.bin", other) is None  # k.bin differs and the next name is free
    assert folder.find("k.bin", other) == (None, tmp_path / "k_0000.bin")
    time.sleep(0.01)
    (tmp_path / "k.bin").write_bytes(data)  # rewritten: same bytes, but it must be hashed again
    assert folder.known("k.bin", checksum) is None


def test_download_folder_spells_paths_as_pathlib(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = b"here"
    checksum = attach.content_uuid(data, "h.txt\0")
    assert attach.place_attachment("h.txt", checksum, ".", lambda: data) == "h.txt"
    assert attach.place_attachment("h.txt", checksum, "./sub/", lambda: data) == "sub/h.txt"
