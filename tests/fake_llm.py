"""A small OpenAI-compatible chat server for tests: real HTTP on 127.0.0.1, scripted replies, and a
record of every request, so tests can check what the `openai` client actually sent over the wire."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    text: str = ""
    status: int = 200
    delay: float = 0.0
    pace: float = 0.0  # seconds between streamed pieces, so a reader can see the stream arrive
    # A slow model whose pace the test decides: the reply waits until this is set (after `delay`).
    hold: threading.Event | None = None


@dataclass
class FakeLLM:
    replies: list[Reply] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    default: Reply = field(default_factory=lambda: Reply("OK [1]."))
    host: str = "127.0.0.1"  # another of this machine's addresses plays an endpoint off the machine

    def start(self) -> "FakeLLM":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "body": body, "headers": {k.lower(): v for k, v in self.headers.items()}})
                reply = fake.replies.pop(0) if fake.replies else fake.default
                time.sleep(reply.delay)
                if reply.hold is not None:
                    reply.hold.wait()
                if reply.status != 200:
                    return self._json(reply.status, {"error": {"message": f"scripted {reply.status}",
                                                               "type": "test", "code": str(reply.status)}})
                if body.get("stream"):
                    return self._stream(body["model"], reply.text, reply.pace)
                self._json(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": reply.text}}]})

            def _json(self, status: int, data: dict) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _stream(self, model: str, text: str, pace: float) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                pieces = [text[i:i + 7] for i in range(0, len(text), 7)]
                for piece in pieces:
                    time.sleep(pace)
                    self._event({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": model,
                                 "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
                self._event({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": model,
                             "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                self.wfile.write(b"data: [DONE]\n\n")

            def _event(self, data: dict) -> None:
                self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()

        self.server = _QuietServer((self.host, 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.server_address[1]}/v1"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietServer(ThreadingHTTPServer):
    """A client that stops reading (an answer abandoned, a timeout) is normal, not a failure: the stock
    server prints a traceback to stderr, which lands in whatever CLI output a test is capturing."""

    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)
