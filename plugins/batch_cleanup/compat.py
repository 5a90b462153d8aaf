"""What moved between the Airflow versions Cloud Composer 3 runs (3.1, 3.2, 3.3), imported once.

Each name comes from the newest home that every supported version has, or, where 3.1 lacks it,
from where 3.1 keeps it.
"""

from __future__ import annotations

from airflow import __version__ as AIRFLOW_VERSION

try:  # 3.2 and later
    from airflow.sdk import conf
except ImportError:  # 3.1: no airflow.sdk.configuration yet
    from airflow.configuration import conf

try:  # 3.2 and later
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
except ImportError:  # 3.1: the Task SDK re-exports AirflowException only
    from airflow.exceptions import AirflowException, AirflowFailException, AirflowSkipException

__all__ = ["AIRFLOW_VERSION", "AirflowException", "AirflowFailException", "AirflowSkipException", "conf"]


def airflow_minor(version: str = AIRFLOW_VERSION) -> tuple[int, int]:
    """(3, 1) for "3.1.8": the minor release line, which decides what the Task SDK offers."""
    major, minor = version.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)
