"""A stand-in for Alibaba Cloud's OOS Parameter Store API (version 2019-06-01) on 127.0.0.1, for Nimbus's
end-to-end tests (tests/src/oos.rs starts it).

It is the independent peer of Nimbus's hand-written V3 signer: every request's `Authorization` header is
recomputed with Alibaba Cloud's own Python signing code (`alibabacloud_openapi_util`, the signer of the
official Python SDKs) and compared; a mismatch is answered as OOS answers it (`SignatureDoesNotMatch`).

Usage: fake_oos.py STATE_FILE LOG_FILE. STATE_FILE (JSON, read again at every request, so a test can
change values between refreshes):
  {"keys": {"<AccessKeyId>": {"secret": "...", "token": "..." or null}},
   "expired_tokens": ["..."], "plain": {"<name>": "<value>"}, "secret": {"<name>": "<value>"},
   "page_size": 2}
Every request appends one JSON line to LOG_FILE: action, query, and whether a security token was sent.
The port is printed on stdout once listening; the server exits when its stdin closes.
"""

import hashlib
import json
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from alibabacloud_openapi_util.client import Client as OpenApiUtil
from Tea.request import TeaRequest

STATE, LOG = sys.argv[1], sys.argv[2]
log_lock = threading.Lock()


class Refusal(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def verify(method, path, query, headers, body, state):
    """Checks the request's V3 signature and credentials as OOS's gateway would."""
    auth = headers.get("authorization", "")
    algorithm, _, rest = auth.partition(" ")
    if algorithm != "ACS3-HMAC-SHA256":
        raise Refusal(400, "IncompleteSignature", "The request signature does not conform to Aliyun standards.")
    fields = dict(part.split("=", 1) for part in rest.split(",") if "=" in part)
    key_id, signed, signature = fields.get("Credential"), fields.get("SignedHeaders", ""), fields.get("Signature")
    key = state["keys"].get(key_id)
    if key is None:
        raise Refusal(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
    payload = hashlib.sha256(body).hexdigest()
    if headers.get("x-acs-content-sha256") != payload:
        raise Refusal(400, "ContentSHA256NotMatched", "The x-acs-content-sha256 header does not match the body.")
    signed_names = signed.split(";")
    for required in ("host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce"):
        if required not in signed_names:
            raise Refusal(400, "IncompleteSignature", f"The header {required} must be signed.")
    request = TeaRequest()
    request.method = method
    request.pathname = path
    request.query = query
    request.headers = {name: headers.get(name) for name in signed_names}
    expected = OpenApiUtil.get_authorization(request, "ACS3-HMAC-SHA256", payload, key_id, key["secret"])
    if expected.rsplit("Signature=", 1)[1] != signature:
        raise Refusal(400, "SignatureDoesNotMatch", "Specified signature does not match our calculation.")
    token = headers.get("x-acs-security-token")
    if token is not None and "x-acs-security-token" not in signed_names:
        raise Refusal(400, "IncompleteSignature", "The header x-acs-security-token must be signed.")
    if token is not None and token in state.get("expired_tokens", []):
        raise Refusal(400, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired.")
    if key.get("token") is not None and token != key["token"]:
        raise Refusal(400, "InvalidSecurityToken.MismatchWithAccessKey",
                      "Specified SecurityToken mismatch with the AccessKey.")


def answer(action, query, state):
    store = state["secret"] if action.startswith("GetSecret") else state["plain"]
    decrypt = query.get("WithDecryption") == "true"

    def item(name):
        kind = "Secret" if store is state["secret"] else "String"
        value = store[name] if (kind == "String" or decrypt) else "encrypted:" + name
        return {"Name": name, "Value": value, "Type": kind, "ParameterVersion": 1, "Id": "p-" + uuid.uuid4().hex[:20]}

    if action in ("GetParameters", "GetSecretParameters"):
        names = json.loads(query["Names"])
        if not isinstance(names, list) or not 1 <= len(names) <= 10:
            raise Refusal(400, "InvalidParameter.Names", "Names must be a JSON array of 1 to 10 names.")
        return {"Parameters": [item(n) for n in names if n in store],
                "InvalidParameters": [n for n in names if n not in store]}
    if action in ("GetParametersByPath", "GetSecretParametersByPath"):
        path = query["Path"].rstrip("/") + "/"
        if query.get("Recursive") != "true":
            raise Refusal(400, "InvalidParameter.Recursive", "This stand-in only answers recursive queries.")
        page = min(int(query.get("MaxResults", "10")), int(state.get("page_size", 10)))
        under = sorted(n for n in store if n.startswith(path))
        start = int(query.get("NextToken", "0") or "0")
        chunk = under[start:start + page]
        body = {"Parameters": [item(n) for n in chunk], "MaxResults": page, "TotalCount": len(under)}
        if start + page < len(under):
            body["NextToken"] = str(start + page)
        return body
    raise Refusal(400, "InvalidAction.NotFound", f"Specified api {action} is not found.")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        action = headers.get("x-acs-action", "")
        with log_lock, open(LOG, "a") as log:
            log.write(json.dumps({"action": action, "query": query,
                                  "token": "x-acs-security-token" in headers}) + "\n")
        request_id = str(uuid.uuid4()).upper()
        try:
            with open(STATE) as f:
                state = json.load(f)
            if headers.get("x-acs-version") != "2019-06-01":
                raise Refusal(400, "InvalidVersion", "Specified parameter Version is not valid.")
            verify("POST", url.path, query, headers, body, state)
            status, reply = 200, answer(action, query, state)
        except Refusal as r:
            status, reply = r.status, {"HostId": "oos.cn-hangzhou.aliyuncs.com", "Code": r.code,
                                        "Message": r.message}
        reply["RequestId"] = request_id
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json;charset=utf-8")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.server_address[1], flush=True)
sys.stdin.read()
server.shutdown()
