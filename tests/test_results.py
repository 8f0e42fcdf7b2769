"""Storage locations and result files at the edge: query-keeping joins, damaged files told from missing ones."""

from __future__ import annotations

import pytest

from trainables import results

QUERY = "endpoint_override=127.0.0.1:9000&scheme=http"


@pytest.mark.parametrize("base, parts, expected", [
    ("/data/runs", ("exp", "sweep.yaml"), "/data/runs/exp/sweep.yaml"),
    ("/data/runs/", ("exp",), "/data/runs/exp"),
    ("s3://bucket/x", ("exp", "plan.json"), "s3://bucket/x/exp/plan.json"),
    (f"s3://bucket/x?{QUERY}", ("exp", "plan.json"), f"s3://bucket/x/exp/plan.json?{QUERY}"),
    (f"s3://bucket/x/?{QUERY}", ("/exp/",), f"s3://bucket/x/exp?{QUERY}"),
])
def test_join_puts_parts_in_the_path_and_keeps_the_query_last(base, parts, expected):
    # regression: f"{storage}/{name}" gave 'Invalid S3 connection scheme http/x/sweep.yaml'
    assert results.join(base, *parts) == expected


def test_cell_folder_of_a_uri_with_a_query():
    cell = results.cell_dir(f"s3://bucket/x/exp?{QUERY}", "baseline-abc", 3)
    assert cell == f"s3://bucket/x/exp/results/baseline-abc/seed-3?{QUERY}"
    assert results.split_query("/local/path?not-a-query") == ("/local/path?not-a-query", "")


def test_json_files_missing_damaged_or_good(tmp_path):
    uri = str(tmp_path / "status.json")
    assert results.read_json(uri) is None
    for damaged, reason in ((b"", "empty"), (b'{"state": "run', "not valid JSON"), (b"[1]", "expected a JSON object"),
                            (b"\xff\xfe", "not valid JSON")):
        (tmp_path / "status.json").write_bytes(damaged)
        with pytest.raises(results.DamagedFile, match=reason):
            results.read_json(uri)
    (tmp_path / "status.json").write_text('{"state": "done", "updated": 1.5}')
    assert results.read_status(str(tmp_path)) == {"state": "done", "updated": 1.5}


def test_a_write_that_fails_names_the_file_and_leaves_no_temporary(tmp_path):
    (tmp_path / "blocker").write_text("a file where the folder should be")
    with pytest.raises(results.StorageError, match="blocker/exp/plan.json: cannot write"):
        results.write_bytes(str(tmp_path / "blocker" / "exp" / "plan.json"), b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]
