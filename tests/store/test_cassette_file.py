import os
import shutil
from pathlib import Path

import pytest

from inference_gate.core.cassette import CassetteError
from inference_gate.store.cassette_file import read_cassette_file

CAP_BYTES = 1024
CONTENT = b'{"format_version": 1}\n'


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "cache" / "chat.completions"
    folder.mkdir(parents=True)
    return tmp_path / "cache"


def slot(root: Path) -> Path:
    return root / "chat.completions" / "hello.0123456789abcdef.json"


def refusal(root: Path) -> str:
    with pytest.raises(CassetteError) as raised:
        read_cassette_file(slot(root), root, CAP_BYTES)
    return str(raised.value)


def test_a_regular_file_is_read_whole(root):
    slot(root).write_bytes(CONTENT)
    assert read_cassette_file(slot(root), root, CAP_BYTES) == CONTENT


def test_nothing_there_is_not_found(root):
    with pytest.raises(FileNotFoundError):
        read_cassette_file(slot(root), root, CAP_BYTES)


def test_a_fifo_is_refused_without_waiting_for_a_writer(root):
    os.mkfifo(slot(root))  # a blocking open or read would hang this test: nothing ever writes to it
    assert refusal(root) == "is not a regular file (a FIFO)"


def test_a_directory_is_refused(root):
    slot(root).mkdir()
    assert refusal(root) == "is not a regular file (a directory)"


def test_a_file_over_the_cap_is_refused_by_its_size(root):
    slot(root).write_bytes(b" " * (CAP_BYTES + 1))
    assert refusal(root) == f"is {CAP_BYTES + 1} bytes, more than max_cassette_bytes ({CAP_BYTES})"


def test_a_file_at_the_cap_is_read(root):
    slot(root).write_bytes(b" " * CAP_BYTES)
    assert len(read_cassette_file(slot(root), root, CAP_BYTES)) == CAP_BYTES


def test_a_symlink_to_a_device_is_refused_before_it_is_opened(root):
    slot(root).symlink_to("/dev/zero")
    assert refusal(root) == "is a symlink to /dev/zero, outside the cache directory"


def test_a_symlink_out_of_the_cache_directory_is_refused(root, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_bytes(CONTENT)
    slot(root).symlink_to(outside)
    assert refusal(root) == f"is a symlink to {outside.resolve()}, outside the cache directory"


def test_a_symlink_whose_target_is_gone_is_refused(root):
    slot(root).symlink_to(root / "gone.json")
    assert "which does not exist" in refusal(root)


def test_a_symlink_inside_the_cache_directory_is_followed(root):
    (root / "shared.json").write_bytes(CONTENT)
    slot(root).symlink_to(Path("..") / "shared.json")
    assert read_cassette_file(slot(root), root, CAP_BYTES) == CONTENT


def test_a_symlink_to_a_fifo_inside_is_refused_as_a_fifo(root):
    os.mkfifo(root / "pipe")
    slot(root).symlink_to(root / "pipe")
    assert refusal(root) == "is not a regular file (a FIFO)"


def test_a_symlinked_endpoint_folder_serves_its_own_files_and_links(root, tmp_path):
    shared = tmp_path / "shared-folder"
    shared.mkdir()
    (shared / "real.json").write_bytes(CONTENT)
    (shared / "hello.0123456789abcdef.json").symlink_to("real.json")
    shutil.rmtree(root / "chat.completions")
    (root / "chat.completions").symlink_to(shared, target_is_directory=True)
    assert read_cassette_file(slot(root), root, CAP_BYTES) == CONTENT
