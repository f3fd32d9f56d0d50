"""The stores: one module per external system, each with its reads and its writes.

- `base`: what every store offers (`ClickHouse`, `RowsWriter`), `StoreError`,
  and the factory that opens the configured ones;
- `chdb` (embedded ClickHouse), `clickhouse` (a server), `sqlite` and
  `mysql` (`error_record`, sharing `sql`), `kafka` (the dead-letter topic);
- `sink`: the Bytewax adapter all tables are written through;
- `retry`, `urls`, `arrow`: the retry policy, server URLs and the Arrow
  conversion the server stores share.
"""
