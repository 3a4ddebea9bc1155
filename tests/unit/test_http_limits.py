"""The request bounds of the verifier app, on a small FastAPI app in process (no Ray, no Serve)."""

import asyncio
import time

import httpx
import pytest
from fastapi import FastAPI, Request

from cot_ray.verify.http_limits import bounded

MAX_BYTES = 1000
CHUNK = 100


def make_app(seconds: float = 0.5) -> FastAPI:
    app = FastAPI()
    bounded(app, MAX_BYTES, lambda: seconds)

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    @app.get("/slow")
    async def slow() -> dict:
        await asyncio.sleep(5)
        return {}

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("a bug")

    return app


def call(app: FastAPI, method: str, path: str, **kwargs) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


class Chunks:
    """A chunked upload (no Content-Length) that counts how much of it the server pulled."""

    def __init__(self, n: int) -> None:
        self.n, self.sent = n, 0

    async def __aiter__(self):
        for _ in range(self.n):
            self.sent += 1
            yield b"x" * CHUNK


@pytest.mark.parametrize("n_chunks", [1, MAX_BYTES // CHUNK])
def test_a_chunked_body_within_the_limit_reaches_the_app_whole(n_chunks):
    r = call(make_app(), "POST", "/echo", content=Chunks(n_chunks))
    assert r.status_code == 200 and r.json() == {"bytes": n_chunks * CHUNK}


def test_a_chunked_body_past_the_limit_is_refused_once_the_bytes_read_pass_it():
    upload = Chunks(10_000)  # 1 MB against a 1000-byte limit
    r = call(make_app(), "POST", "/echo", content=upload)
    assert r.status_code == 413, r.text
    assert f"at most {MAX_BYTES}" in r.json()["detail"]
    assert r.headers["connection"] == "close"
    assert upload.sent == MAX_BYTES // CHUNK + 1, "the rest of the body must stay unread"


def test_a_declared_length_past_the_limit_is_refused_unread():
    r = call(make_app(), "POST", "/echo", content=b"x" * (MAX_BYTES + 1))
    assert r.status_code == 413 and f"request body of {MAX_BYTES + 1} bytes" in r.json()["detail"]
    r = call(make_app(), "POST", "/echo", content=b"{}", headers={"content-length": "lots"})
    assert r.status_code == 413


def test_a_request_past_its_time_limit_is_a_504_in_json():
    t0 = time.perf_counter()
    r = call(make_app(seconds=0.3), "GET", "/slow")
    assert r.status_code == 504 and r.json() == {"detail": "the request took longer than 0.3s"}
    assert time.perf_counter() - t0 < 3


def test_a_slow_upload_counts_against_the_time_limit():
    async def trickle():
        yield b"{"
        await asyncio.sleep(3)
        yield b"}"

    r = call(make_app(seconds=0.3), "POST", "/echo", content=trickle())
    assert r.status_code == 504


def test_every_error_layer_answers_json_with_a_detail():
    app = make_app()
    for method, path, status in (("GET", "/boom", 500), ("GET", "/nowhere", 404), ("GET", "/echo", 405)):
        r = call(app, method, path)
        assert r.status_code == status and r.headers["content-type"] == "application/json", (path, r.text)
        assert r.json()["detail"], path
    assert call(app, "GET", "/boom").json() == {"detail": "internal error (RuntimeError)"}
