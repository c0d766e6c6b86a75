import pytest

from inference_gate.review.revisions import diff_revisions, parse_revisions
from tests.gitrepo import commit_all, init_repository


@pytest.mark.parametrize(
    ("spec", "sides"),
    [
        (None, ("HEAD", None)),
        ("main", ("main", None)),
        ("a..b", ("a", "b")),
        ("a..", ("a", "HEAD")),
        ("..b", ("HEAD", "b")),
    ],
)
def test_revision_specs_read_as_in_git(spec, sides):
    assert parse_revisions(spec) == sides


def test_only_files_whose_bytes_differ_are_compared(tmp_path):
    repo = init_repository(tmp_path / "repo")
    cache = repo / ".inference_cache" / "embeddings"
    cache.mkdir(parents=True)
    for index in range(3):
        (cache / f"{index:016x}.json").write_bytes(b'{"format_version": 1}\n')
    commit_all(repo, "three")
    (cache / f"{1:016x}.json").write_bytes(b"torn")
    diff = diff_revisions(repo / ".inference_cache", None, cwd=repo)
    assert [changed.name for changed in diff.changes.changed] == [f"embeddings/{1:016x}.json"]
    assert (diff.base, diff.target, diff.folder) == ("HEAD", "working tree", ".inference_cache")
