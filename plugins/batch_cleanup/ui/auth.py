"""Who may read the history: whoever Airflow lets read the DAG, signed in as for the rest of the UI;
who may label its incidents: whoever Airflow lets edit the DAG.

The user comes from Airflow's own dependency `get_user`: the JWT in the `_token` cookie that the UI's
login sets, or an `Authorization: Bearer` token from `POST /auth/token`. The auth manager then decides
whether that user may read the DAG whose history this is.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlencode

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.core_api.security import get_user
from airflow.configuration import conf
from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import RedirectResponse

from batch_cleanup.ui import DAG_ID


def require_dag_reader(user: Annotated[BaseUser, Depends(get_user)]) -> BaseUser:
    """The signed-in user, if they may read the DAG; 401 without a valid token, 403 without access."""
    if not _may(user, "GET"):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"Reading the cleanup history needs read access to DAG {DAG_ID}"
        )
    return user


def may_edit(user: Annotated[BaseUser, Depends(require_dag_reader)]) -> bool:
    """Whether the reader may also edit the DAG, and so label its incidents."""
    return _may(user, "PUT")


def require_dag_editor(user: Annotated[BaseUser, Depends(require_dag_reader)]) -> BaseUser:
    """The signed-in user, if they may edit the DAG (label its incidents); 403 otherwise."""
    if not _may(user, "PUT"):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"Labelling an incident needs edit access to DAG {DAG_ID}"
        )
    return user


def _may(user: BaseUser, method: Literal["GET", "PUT"]) -> bool:
    """What the auth manager says of `user` and the DAG (of its team, when Airflow has teams)."""
    team_name = None
    if conf.getboolean("core", "multi_team", fallback=False):
        from airflow.models.dag import DagModel

        team_name = DagModel.get_team_name(DAG_ID)
    details = DagDetails(id=DAG_ID, team_name=team_name)
    return get_auth_manager().is_authorized_dag(method=method, details=details, user=user)


def login_redirect(request: Request) -> RedirectResponse:
    """To the auth manager's login page, coming back to this page (path and query, same host) after."""
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login = get_auth_manager().get_url_login()
    return RedirectResponse(f"{login}?{urlencode({'next': back})}", status_code=status.HTTP_302_FOUND)
