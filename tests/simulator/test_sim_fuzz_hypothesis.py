"""Generated bad input against the real simulator process: bodies, headers, methods, paths.

Each request must get a deliberate answer: 2xx, or a 4xx carrying an OpenAI error object
(``{"error": {"code": <status>, "message": ...}}``). A 5xx fails the test, so does a request
that gets no answer within its deadline (a hang), and the process must still be up and healthy
at the end. ``LAMPLIGHTER_FUZZ_CASES`` sets the number of cases (default 1,000; nightly
10,000). The admin switches are off, as in the image: a fuzzed ``x-sim-force-error`` header
must be ignored, not obeyed.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from aiohttp.web_protocol import RequestPayloadError

from fixtures.plugin import Evidence
from simulator import server as server_module
from simulator.server import build_app
from tests.support.fuzz_totals import record_fuzz_totals
from tests.support.http_inputs import check_answer, fuzz_http
from tests.support.simulator_servers import InProcessServer, run_cli, sim_config

CASES = int(os.environ.get("LAMPLIGHTER_FUZZ_CASES", "1000"))
REQUEST_DEADLINE = 10.0  # seconds: no answer by then counts as a hang
MODEL = "sim-model"
VALID = json.dumps({"model": MODEL, "prompt": "hello", "max_tokens": 2}).encode()
@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Any, str]]:
    """One CLI process for the module, admin off (the default unless the env turns it on)."""
    env_admin = os.environ.pop("LLM_SIM_ENABLE_ADMIN", None)
    try:
        with run_cli("--time-scale", "0.05", "--max-model-len", "512",
                     "--step-base-ms", "1") as (proc, url):
            yield proc, url
    finally:
        if env_admin is not None:
            os.environ["LLM_SIM_ENABLE_ADMIN"] = env_admin


def test_generated_requests_get_an_answer_never_a_5xx_or_a_hang(
    served: tuple[Any, str], evidence: Evidence,
) -> None:
    proc, url = served
    with httpx.Client(base_url=url, timeout=REQUEST_DEADLINE) as http:
        seen = fuzz_http(http, MODEL, CASES)
        assert http.get("/health").status_code == 200
    record_fuzz_totals(evidence, "simulator", dict(seen))
    assert proc.poll() is None, "the simulator died under fuzzing"
    assert sum(seen.values()) >= CASES
    # The generator reaches both sides: served requests and refused ones.
    assert seen.get(200, 0) > CASES // 50, seen
    assert sum(n for code, n in seen.items() if 400 <= code < 500) > CASES // 5, seen


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd", "bogus"])
def test_a_body_that_does_not_match_its_content_encoding_is_taken_as_sent(
    served: tuple[Any, str], encoding: str,
) -> None:
    """What the fuzz found: aiohttp's decompression answered a 500 or a plain-text 400.

    As vLLM, the body is read as sent: JSON is served, anything else is an OpenAI 400."""
    _, url = served
    headers = {"content-type": "application/json", "content-encoding": encoding}
    served_plain = httpx.post(f"{url}/v1/completions", content=VALID, headers=headers)
    assert served_plain.status_code == 200, served_plain.text
    junk = httpx.post(f"{url}/v1/completions", content=b"\x1f\x8b\x00junk", headers=headers)
    assert junk.status_code == 400, junk.text
    check_answer(junk)


def test_a_body_that_breaks_off_is_an_openai_400() -> None:
    """A body the transport cannot deliver (RequestPayloadError) is the client's fault."""
    response = asyncio.run(_answer_to_a_broken_body())
    assert isinstance(response, web.Response) and response.status == 400
    assert response.text is not None
    assert json.loads(response.text)["error"]["code"] == 400


async def _answer_to_a_broken_body() -> web.StreamResponse:
    app = build_app(sim_config())
    middleware: Callable[[web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]],
                         Awaitable[web.StreamResponse]] = app.middlewares[0]

    async def broken(request: web.Request) -> web.StreamResponse:
        raise RequestPayloadError("response payload is not completed")

    return await middleware(make_mocked_request("POST", "/v1/completions"), broken)


def test_a_5xx_or_a_bare_4xx_fails_the_fuzz_check() -> None:
    """Negative control: the per-request check refuses a 5xx even with an error body, a 4xx
    without a message and a plain-text 4xx."""
    for bad in (httpx.Response(500, json={"error": {"code": 500, "message": "boom"}}),
                httpx.Response(400, json={"error": {"code": 400, "message": ""}}),
                httpx.Response(400, text="Can not decode content-encoding")):
        with pytest.raises(AssertionError):
            check_answer(bad)
    check_answer(httpx.Response(400, json={"error": {"code": 400, "message": "bad"}}))


def _raw_exchange(url: str, parts: list[bytes], pause: float, wait: float) -> bytes:
    """Send ``parts`` on one connection ``pause`` seconds apart; what came back in ``wait``."""
    address = urlparse(url)
    assert address.hostname is not None and address.port is not None
    with socket.create_connection((address.hostname, address.port), timeout=wait) as conn:
        for index, part in enumerate(parts):
            if index:
                time.sleep(pause)
            conn.sendall(part)
        try:
            return conn.recv(4096)
        except TimeoutError:
            return b""


CHUNKED_HEAD = (b"POST /v1/completions HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json"
                b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"mod\r\n")


def test_a_body_broken_after_its_first_chunk_is_answered_not_waited_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiohttp's parser drops a bad chunk after the first one without telling the reader:
    the handler's body read has a deadline, so the client gets an OpenAI 408."""
    monkeypatch.setattr(server_module, "BODY_READ_TIMEOUT_S", 0.5)
    with InProcessServer(sim_config()) as sim:
        answer = _raw_exchange(sim.url, [CHUNKED_HEAD, b"zz\r\n"], pause=0.3, wait=5.0)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == 408
        # Control: the same body completed in time is served.
        served = _raw_exchange(sim.url, [CHUNKED_HEAD.replace(b'5\r\n{"mod\r\n', b""),
                                         b"%x\r\n%s\r\n0\r\n\r\n" % (len(VALID), VALID)],
                               pause=0.1, wait=5.0)
        assert served.startswith(b"HTTP/1.1 200"), served[:200]
