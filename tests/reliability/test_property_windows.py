"""Property: whatever lines a JSONL file holds, `curate windows` accounts for every one, never crashes.

Hypothesis writes files of random JSON objects (text, id and domain of any JSON type), random
bytes and blank lines, and runs the real command in-process. Each run either succeeds with
documents_in equal to the file's non-blank lines and the run summary's identities holding, or
fails with one `error:` line and exit code 1; a traceback or internal error fails the property.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splitlm.cli._run import run
from splitlm.cli.main import app
from splitlm.schemas.run import RunSummary

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40))
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=5), scalars, max_size=3))
records = st.fixed_dictionaries({}, optional={"text": st.one_of(st.text(min_size=0, max_size=300), values),
                                              "id": values, "domain": values, "meta": values})
lines = st.one_of(
    records.map(lambda r: json.dumps(r).encode()),
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ")),
    st.sampled_from([b"", b"   ", b"{", b"[1, 2]", b'"just a string"', b"\xff\xfe", b'{"text": "\\ud800"}']),
)


def _curate(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["splitlm", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            run(app)
        code = 0
    except SystemExit as done:
        code = done.code or 0
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines, max_size=12))
def test_windows_accounts_for_every_line(rows):
    data = b"\n".join(rows) + (b"\n" if rows else b"")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["SPLITLM_CRASH_DIR"] = str(folder / "crashes")
        (folder / "c.jsonl").write_bytes(data)
        code, out, err = _curate(["curate", "windows", str(folder / "c.jsonl"), "--out", str(folder / "run"),
                                  "--seq-len", "16", "--domain-field", "domain"])
        assert "Traceback" not in out + err and "internal error" not in err, err
        assert not (folder / "crashes").exists()
        if code == 0:
            summary = RunSummary.read(folder / "run")
            summary.check()
            assert summary.documents_in == sum(1 for line in data.split(b"\n") if line.strip())
        else:
            assert code == 1 and err.startswith("error: ") and err.count("\n") == 1, err
