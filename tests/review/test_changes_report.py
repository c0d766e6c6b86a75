import orjson

from inference_gate.review.changes import ABSENT, CassetteChanges, ChangedCassette, FieldChange, ListedCassette
from inference_gate.review.changes_report import as_json, line_diff, markdown, text_lines, value_text, word_diff
from inference_gate.review.revisions import RevisionDiff


def revision_diff(changes: CassetteChanges) -> RevisionDiff:
    return RevisionDiff("origin/main", "working tree", ".inference_cache", changes)


def test_word_diff_reads_like_git_word_diff():
    assert word_diff("the quick brown fox", "the quick red fox") == "the quick [-brown-]{+red+} fox"
    assert word_diff("a b", "a b c") == "a b{+ c+}"
    assert word_diff("one two three", "uno dos three") == "[-one two-]{+uno dos+} three"


def test_line_diff_keeps_context_without_headers():
    assert line_diff("a\nb\nc\nd", "a\nb\nC\nd") == [" a", " b", "-c", "+C", " d"]


def test_values_on_one_line():
    assert value_text(ABSENT) == "<absent>"
    assert value_text("x") == '"x"'
    assert value_text({"a": [1, 2]}) == '{"a":[1,2]}'
    assert value_text("y" * 500).endswith("… (302 more characters)")


def test_text_of_a_multi_line_reply_is_a_line_diff():
    change = FieldChange("reply", "line one\nline two", "line one\nline 2")
    lines = text_lines(revision_diff(CassetteChanges(changed=(ChangedCassette("a/b.json", "a", None, (change,)),))))
    assert lines[1:] == ["changed  a/b.json", "  reply:", "     line one", "    -line two", "    +line 2"]


def test_markdown_table_cells_and_code_survive_pipes_backticks_and_tags():
    listed = ListedCassette("chat.completions/x.json", "chat.completions", "gpt|4", "use `a|b` <script>\nnow")
    changed = ChangedCassette(
        "chat.completions/y.json", "chat.completions", "m", (FieldChange("reply", "```py\nx\n```", "ok"),)
    )
    text = markdown(revision_diff(CassetteChanges(added=(listed,), changed=(changed,))))
    [row] = [line for line in text.splitlines() if line.startswith("| added")]
    assert row == (
        "| added | `chat.completions/x.json` | chat.completions | gpt\\|4 | use `a\\|b` &lt;script&gt; now |"
    )
    assert "````diff\n-```py\n-x\n-```\n+ok\n````" in text  # the fence outgrows the backticks inside
    assert "<details><summary>changed: chat.completions/y.json</summary>" in text


def test_markdown_of_no_changes_is_one_sentence():
    assert markdown(revision_diff(CassetteChanges())) == (
        "### Cassette changes: `origin/main` → `working tree`\n\nno changes in `.inference_cache`.\n"
    )


def test_json_leaves_out_an_absent_side():
    change = FieldChange("request.body.seed", ABSENT, 7)
    diff = as_json(revision_diff(CassetteChanges(changed=(ChangedCassette("a/b.json", "a", None, (change,)),))))
    assert orjson.loads(orjson.dumps(diff))["changed"] == [
        {"name": "a/b.json", "endpoint": "a", "model": None, "changes": [{"field": "request.body.seed", "new": 7}]}
    ]
