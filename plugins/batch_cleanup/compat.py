"""What moved between the Airflow versions Cloud Composer 3 runs (3.1, 3.2, 3.3), imported once.

Each name comes from the newest home that every supported version has, or, where 3.1 lacks it,
from where 3.1 keeps it.
"""

from __future__ import annotations

try:  # 3.2 and later
    from airflow.sdk import conf
except ImportError:  # 3.1: no airflow.sdk.configuration yet
    from airflow.configuration import conf

try:  # 3.2 and later
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
except ImportError:  # 3.1: the Task SDK re-exports AirflowException only
    from airflow.exceptions import AirflowException, AirflowFailException, AirflowSkipException

__all__ = ["AirflowException", "AirflowFailException", "AirflowSkipException", "conf"]
