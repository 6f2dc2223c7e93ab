"""README's webhook receiver works as written: it accepts what the webhooks process signs, acts
once per webhook-id, and refuses a bad signature. The example is run from the README's text, so
an edit that breaks it fails here."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime

from api_gateway.webhooks.signing import headers as signed
from api_gateway.webhooks.signing import new_secret
from tests.support.deploy import ROOT


def readme_receiver(secret: str) -> dict:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(\s*from http\.server.*?)```", readme, re.S)
    assert block, "README has a Python webhook receiver"
    code = "\n".join(line.removeprefix("  ") for line in block.group(1).splitlines())
    assert 'SECRET = "whsec_..."' in code and "serve_forever()" in code
    code = code.replace('SECRET = "whsec_..."', f'SECRET = "{secret}"')
    code = code.replace('HTTPServer(("0.0.0.0", 8080), Hooks).serve_forever()', "")
    namespace: dict = {"print": lambda *args: namespace["acted"].append(args), "acted": []}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace


def post(port: int, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", body, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code


def test_the_readme_receiver_verifies_acts_once_and_refuses_a_forgery():
    secret = new_secret()
    example = readme_receiver(secret)
    example["Hooks"].log_message = lambda *args: None
    server = example["HTTPServer"](("127.0.0.1", 0), example["Hooks"])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        body = json.dumps({"type": "run.failed", "timestamp": "t", "data": {"x": 1}}).encode()
        headers = signed("msg_2Lp0", datetime.now(UTC), body, [secret])
        assert post(port, body, headers) == 204
        assert post(port, body, headers) == 204  # a redelivery: answered, not acted on again
        forged = {**headers, "webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
        assert post(port, body, forged) == 400
        assert example["acted"] == [("run.failed", {"x": 1})]
    finally:
        server.shutdown()
        server.server_close()
