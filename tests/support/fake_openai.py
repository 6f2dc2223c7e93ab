"""A local HTTP server speaking enough of the OpenAI wire format for the provider tests: chat
completions and image generations, with scripted failures (status codes) before answering."""

from __future__ import annotations

import base64
import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from stage_workers.ai.png import draw_from_prompt


class FakeOpenAI:
    def __init__(self) -> None:
        self.failures: deque[int] = deque()  # statuses to answer before succeeding
        self.chat_answers: deque[str] = deque()
        self.requests: list[dict] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                fake.requests.append({"path": self.path, "body": body})
                if fake.failures:
                    status = fake.failures.popleft()
                    self._send(status, {"error": {"message": f"scripted {status}", "type": "x"}})
                elif self.path.endswith("/chat/completions"):
                    self._send(200, fake.completion(body))
                elif self.path.endswith("/images/generations"):
                    png = draw_from_prompt(body["prompt"], 32, 32)
                    picture = {"b64_json": base64.b64encode(png).decode()}
                    self._send(200, {"created": 0, "data": [picture]})
                else:
                    self._send(404, {"error": {"message": "no such path"}})

            def _send(self, status: int, document: dict) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def completion(self, request: dict) -> dict:
        content = self.chat_answers.popleft() if self.chat_answers else "plain text"
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": request["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": content},
                }
            ],
        }
