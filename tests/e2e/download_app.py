"""A team's own app with a download link that takes ``?api_key=`` (SPEC §4.4), run by
``test_uvicorn_logs`` as ``uvicorn tests.e2e.download_app:app``, exactly as a user runs theirs:
uvicorn's logging configuration and its access log on."""

from typing import Annotated

from fastapi import FastAPI

from bastion import Bastion, Principal

bastion = Bastion.from_env()
app = FastAPI(lifespan=bastion.lifespan)
bastion.protect(app)


@app.get("/download")
async def download(
    user: Annotated[Principal, bastion.require(api_key_in_query=True, schemes=("api_key",))],
) -> dict[str, str]:
    """A link a user pastes into a browser or a webhook: the key rides in the query string."""
    return {"for": user.username}
