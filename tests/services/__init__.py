"""Real services for the tests, started on 127.0.0.1 and stopped by the PID they were started with.

`kafka.TansuBroker` (a Kafka broker), `clickhouse_http.ClickHouseServer`
(ClickHouse's HTTP interface served from chDB) and `mysql` (databases and
users on the MariaDB that `scripts/services.sh` starts). The pytest
fixtures in `tests/conftest.py` wrap them.
"""
