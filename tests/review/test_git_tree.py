from pathlib import Path

import pytest

from inference_gate.review.git_tree import (
    GitError,
    blob_id,
    cassette_blobs,
    path_in_repository,
    read_blobs,
    repository_root,
    resolve_commit,
)
from tests.gitrepo import commit_all, git, init_repository

CASSETTE = "chat.completions/say-hello.0123456789abcdef.json"


@pytest.fixture
def repo(tmp_path) -> Path:
    repo = init_repository(tmp_path / "repo")
    cache = repo / "sub" / "cache"
    (cache / "chat.completions").mkdir(parents=True)
    (cache / CASSETTE).write_bytes(b'{"a": 1}\n')
    (cache / "chat.completions" / "0123456789abcdef.json").write_bytes(b"")
    (cache / "chat.completions" / "notes.md").write_bytes(b"not a cassette\n")
    (cache / "top.0123456789abcdef.json").write_bytes(b"{}\n")  # not one folder deep
    (cache / "a" / "b").mkdir(parents=True)
    (cache / "a" / "b" / "deep.0123456789abcdef.json").write_bytes(b"{}\n")
    commit_all(repo, "cassettes")
    return repo


def test_blob_ids_are_git_s_own(repo):
    for data in (b"", b'{"a": 1}\n', "héllo 🌍".encode()):
        (repo / "probe").write_bytes(data)
        assert blob_id(data) == git(repo, "hash-object", "probe").strip()


def test_cassette_blobs_lists_only_cassettes_one_folder_deep(repo):
    blobs = cassette_blobs(repo, resolve_commit(repo, "HEAD"), "sub/cache")
    assert sorted(blobs) == ["chat.completions/0123456789abcdef.json", CASSETTE]
    assert blobs[CASSETTE] == blob_id(b'{"a": 1}\n')


def test_read_blobs_reads_many_in_one_process(repo):
    blobs = cassette_blobs(repo, "HEAD", "sub/cache")
    contents = read_blobs(repo, [*blobs.values(), blobs[CASSETTE]])
    assert contents == {blobs[CASSETTE]: b'{"a": 1}\n', blob_id(b""): b""}
    assert read_blobs(repo, []) == {}


def test_where_git_cannot_answer(repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(GitError, match="is not inside a git work tree"):
        repository_root(outside)
    assert repository_root(repo / "sub").resolve() == repo.resolve()
    assert path_in_repository(repo, repo / "sub" / "cache") == "sub/cache"
    with pytest.raises(GitError, match="is not inside the git repository"):
        path_in_repository(repo, outside)
    with pytest.raises(GitError, match="unknown revision '--help'"):
        resolve_commit(repo, "--help")
