from pathlib import Path

from inference_gate.review.prune import cassette_names, delete_cassettes


def make_files(cache_dir: Path, *names: str) -> None:
    for name in names:
        (cache_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (cache_dir / name).write_text("{}")


def test_names_are_relative_to_the_cache_dir_and_only_cassettes(tmp_path: Path) -> None:
    make_files(tmp_path, "chat.completions/hi.0123456789abcdef.json", "embeddings/fedcba9876543210.json")
    make_files(tmp_path, "chat.completions/notes.txt", "README.md")
    assert cassette_names(tmp_path) == ["chat.completions/hi.0123456789abcdef.json", "embeddings/fedcba9876543210.json"]


def test_a_missing_cache_dir_has_no_cassettes(tmp_path: Path) -> None:
    assert cassette_names(tmp_path / "absent") == []


def test_delete_removes_only_the_named_cassettes(tmp_path: Path) -> None:
    make_files(tmp_path, "chat.completions/a.0123456789abcdef.json", "chat.completions/b.0123456789abcdee.json")
    delete_cassettes(tmp_path, ["chat.completions/a.0123456789abcdef.json", "chat.completions/gone.json"])
    assert cassette_names(tmp_path) == ["chat.completions/b.0123456789abcdee.json"]
