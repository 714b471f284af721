"""The normalized audit-event table every local source produces and every kql/ function reads.

Column names are GitHub's own where GitHub has one; `timestamp` is epoch milliseconds UTC, as in
GitHub's `@timestamp` and the `GH_Audit_Logs_CL` custom table, so the same KQL runs on it locally
and in Log Analytics.
"""

from __future__ import annotations

import pyarrow as pa

#: name -> Arrow type of the normalized events table (`data/ingest/events.parquet`).
EVENT_SCHEMA: pa.Schema = pa.schema(
    [
        ("timestamp", pa.int64()),  # epoch ms UTC (GitHub `@timestamp`, else `created_at`)
        ("document_id", pa.string()),  # GitHub `_document_id`; null in the old REST shape
        ("action", pa.string()),
        ("actor", pa.string()),
        ("actor_id", pa.string()),
        ("actor_ip", pa.string()),
        ("country_code", pa.string()),  # `actor_location.country_code`
        ("org", pa.string()),
        ("repo", pa.string()),  # `repo`, else `repository`
        ("user", pa.string()),  # the user acted upon (e.g. org.remove_member)
        ("operation_type", pa.string()),
        ("transport_protocol_name", pa.string()),
        ("programmatic_access_type", pa.string()),
        ("user_agent", pa.string()),
        ("business", pa.string()),
        ("visibility", pa.string()),  # `visibility` (repo.access, repo.create)
        ("permission", pa.string()),  # `permission` (org.update_member, repo.add_member)
        ("source_file", pa.string()),  # where the event came from (file path or "simulator")
        ("source_line", pa.int64()),  # 1-based line (NDJSON) or record index
    ]
)

EVENT_COLUMNS: list[str] = EVENT_SCHEMA.names

#: The table name the kql/ functions read; a prelude maps each deployment onto it.
KQL_TABLE = "GH_Audit_Logs_CL"
