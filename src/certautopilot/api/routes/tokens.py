"""Your own API tokens (any authenticated caller): list, create (shown once), revoke; the
same as the web UI's Tokens page, for the CLI and scripts."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from certautopilot.auth import service as auth
from certautopilot.auth.models import ApiToken
from certautopilot.auth.schemas import TokenCreated, TokenIn, TokenOut
from certautopilot.clock import as_utc
from certautopilot.deps import CurrentUser, DbSession

router = APIRouter(tags=["tokens"])
BASE = "/tokens"


def _out(row: ApiToken) -> TokenOut:
    return TokenOut(id=row.id, name=row.name, prefix=row.prefix, created_at=as_utc(row.created_at))


@router.get(BASE, response_model=list[TokenOut])
def list_tokens(session: DbSession, user: CurrentUser) -> list[TokenOut]:
    """The caller's tokens, newest first."""
    return [_out(row) for row in auth.list_tokens(session, user=user)]


@router.post(BASE, status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
def create_token(body: TokenIn, session: DbSession, user: CurrentUser) -> JSONResponse:
    """A new token for the caller (audited as ``token.created``); the answer is not cached."""
    token = auth.create_token(session, user=user, name=body.name)
    session.commit()
    # Newest first: the row just made is the first with this token's prefix.
    row = next(r for r in auth.list_tokens(session, user=user) if token.startswith(r.prefix))
    created = TokenCreated(**_out(row).model_dump(), token=token)
    return JSONResponse(
        created.model_dump(mode="json"),
        status_code=status.HTTP_201_CREATED,
        headers={"Cache-Control": "no-store"},
    )


@router.delete(BASE + "/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: str, session: DbSession, user: CurrentUser) -> Response:
    """Revokes one of the caller's tokens at once (``token.revoked``); 404 for any other."""
    auth.revoke_token(session, user=user, token_id=token_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
