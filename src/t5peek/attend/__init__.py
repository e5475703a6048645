"""One attention head, in numbers: `t5peek attend`.

`run.run_attend(session, request)` takes a request (checked when it was made), runs the model to the query with
hooks on one attention module (`capture`), recomputes the head from that module's weights (`recompute`) and
returns an `AttendReport` (`records`). `heads` holds the family facts: where the module lives, the scaling,
T5's relative-position buckets.
"""

from __future__ import annotations

from t5peek.attend.records import AttendReport, AttentionKind, HeadCheck, KeyRow

__all__ = ["AttendReport", "AttentionKind", "HeadCheck", "KeyRow"]
