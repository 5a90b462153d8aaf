"""How long a local Airflow's components wait for SQLite's lock: `[database] sql_alchemy_connect_args`.

`make run` and the system tests run the scheduler, triggerer, dag-processor and api-server on one
SQLite file. SQLite's default wait is 5 s. On a loaded machine a writer can hold the lock longer,
and the scheduler then dies on "database is locked" (seen in CI): every component but the
api-server waits 60 s.

The api-server keeps 5 s. Airflow 3.3 writes its audit log from an `async` dependency with a
blocking session, so the event loop waits on the lock while the request thread that holds it
waits on the event loop to commit: only the audit log's timeout ends that. At 5 s that request
answers 500 (the caller tries again); at 60 s the api-server would stand still for a minute.
"""

from __future__ import annotations

import sys

API_SERVER_SECONDS = 5.0
OTHERS_SECONDS = 60.0

CONNECT_ARGS = {"timeout": API_SERVER_SECONDS if "api-server" in sys.argv else OTHERS_SECONDS}
