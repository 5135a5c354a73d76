"""Your own API tokens (any authenticated caller): list, create (shown once), revoke; the
same as the web UI's Tokens page, for the CLI and scripts. A token limited to a project or
a role cannot call these (:mod:`certautopilot.auth.tokens`)."""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from certautopilot.auth import tokens
from certautopilot.auth.models import ApiToken
from certautopilot.auth.schemas import Role, TokenCreated, TokenIn, TokenOut
from certautopilot.clock import as_utc
from certautopilot.deps import CurrentUser, DbSession

router = APIRouter(tags=["tokens"])
BASE = "/tokens"


def _out(row: ApiToken, project: str | None) -> TokenOut:
    return TokenOut(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        created_at=as_utc(row.created_at),
        expires_at=as_utc(row.expires_at) if row.expires_at else None,
        expired=tokens.is_expired(row),
        project=project,
        role=cast("Role | None", row.role),  # one of ROLES, checked when made
    )


@router.get(BASE, response_model=list[TokenOut])
def list_tokens(session: DbSession, user: CurrentUser) -> list[TokenOut]:
    """The caller's tokens, newest first, expired ones too (until revoked)."""
    return [_out(row, slug) for row, slug in tokens.list_tokens(session, user=user)]


@router.post(BASE, status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
def create_token(body: TokenIn, session: DbSession, user: CurrentUser) -> JSONResponse:
    """A new token for the caller (audited as ``token.created``); the answer is not cached."""
    token = tokens.create_token(
        session,
        user=user,
        name=body.name,
        expires_in_days=body.expires_in_days,
        project=body.project,
        role=body.role,
    )
    session.commit()
    # Newest first: the row just made is the first with this token's prefix.
    row, slug = next(
        (r, s) for r, s in tokens.list_tokens(session, user=user) if token.startswith(r.prefix)
    )
    created = TokenCreated(**_out(row, slug).model_dump(), token=token)
    return JSONResponse(
        created.model_dump(mode="json"),
        status_code=status.HTTP_201_CREATED,
        headers={"Cache-Control": "no-store"},
    )


@router.delete(BASE + "/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: str, session: DbSession, user: CurrentUser) -> Response:
    """Revokes one of the caller's tokens at once (``token.revoked``); 404 for any other."""
    tokens.revoke_token(session, user=user, token_id=token_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
