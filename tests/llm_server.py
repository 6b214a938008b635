"""A scripted LLM server on 127.0.0.1 that speaks two wire formats.

    with LLMTestServer() as server:                 # server.url = "http://127.0.0.1:PORT"
        server.script("anthropic", [Reply(text="..."), Reply(status=429)])
        server.script("gemini", [Reply(delay_s=2.0, text="late")])
        ...                                         # point an official SDK at server.url
        server.requests                             # what the SDKs sent

Anthropic Messages: POST /v1/messages. Gemini: POST /<version>/models/
<model>:generateContent. Replies are consumed in order per provider; when
a script runs out the server answers 500 "no scripted reply left", so a test
that calls more often than it meant to fails visibly. Successful bodies and
error bodies have the shapes the real APIs use, so the SDKs parse them with
their own code.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GEMINI_PATH = re.compile(r"^/[^/]+/models/(?P<model>[^/:]+):generateContent")
ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error",
                    403: "permission_error", 429: "rate_limit_error", 500: "api_error",
                    529: "overloaded_error"}  # fmt: skip
GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip


@dataclass
class Reply:
    text: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None


class LLMTestServer:
    def __init__(self):
        self._scripts: dict[str, list[Reply]] = {"anthropic": [], "gemini": []}
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True  # a delayed reply must not block shutdown
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> LLMTestServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def script(self, provider: str, replies: list[Reply]) -> None:
        with self._lock:
            self._scripts[provider] = list(replies)

    def _next(self, provider: str) -> Reply:
        with self._lock:
            if self._scripts[provider]:
                return self._scripts[provider].pop(0)
        return Reply(status=500, text="test server: no scripted reply left")

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"<unparsed>": raw.decode(errors="replace")}
                path = self.path.split("?")[0]
                gemini = GEMINI_PATH.match(path)
                if path == "/v1/messages":
                    provider, model = "anthropic", body.get("model", "")
                elif gemini:
                    provider, model = "gemini", gemini["model"]
                else:
                    self._send(404, {"error": f"test server: no route {path}"})
                    return
                server.requests.append({"provider": provider, "path": self.path,
                                        "headers": {k.lower(): v for k, v in self.headers.items()},
                                        "body": body})  # fmt: skip
                reply = server._next(provider)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.status != 200:
                    self._send(reply.status, _error(provider, reply), reply.headers)
                else:
                    self._send(200, _success(provider, model, body, reply), reply.headers)

            def _send(self, status: int, payload: dict, headers: dict | None = None):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

        return Handler


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _success(provider: str, model: str, request: dict, reply: Reply) -> dict:
    tokens_in = (
        reply.input_tokens if reply.input_tokens is not None else _tokens(json.dumps(request))
    )
    tokens_out = reply.output_tokens if reply.output_tokens is not None else _tokens(reply.text)
    if provider == "anthropic":
        content = [{"type": "text", "text": reply.text}] if reply.text else []
        return {"id": "msg_test", "type": "message", "role": "assistant", "model": model,
                "content": content, "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out}}  # fmt: skip
    parts = [{"text": reply.text}] if reply.text else []
    return {"candidates": [{"content": {"role": "model", "parts": parts},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": tokens_in, "candidatesTokenCount": tokens_out,
                              "totalTokenCount": tokens_in + tokens_out},
            "modelVersion": model}  # fmt: skip


def _error(provider: str, reply: Reply) -> dict:
    message = reply.text or f"test server: scripted HTTP {reply.status}"
    if provider == "anthropic":
        kind = ANTHROPIC_ERRORS.get(reply.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    status = GOOGLE_STATUS.get(reply.status, "UNKNOWN")
    return {"error": {"code": reply.status, "message": message, "status": status}}
