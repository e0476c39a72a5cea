#!/usr/bin/env python3
"""Fires N concurrent sign-ups at a gateway and records every one that got a 200, as it
happens, so a test can SIGKILL the gateway mid-way and then check that nothing acknowledged
was lost.

    kill9_logins.py URL N OUT      (URL like http://127.0.0.1:PORT)

OUT gets one JSON line per acknowledged sign-up: {"email", "password", "user_id", "session_id",
"access_token"}. Failures (refused connections after the kill) are counted on stderr.
"""
import base64
import concurrent.futures
import json
import sys
import threading
import urllib.request
import uuid

url, n, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
out = open(out_path, "a", buffering=1)
failures = 0


def claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def one(i):
    global failures
    email = f"k9-{i}-{uuid.uuid4().hex[:8]}@example.com"
    body = json.dumps({"email": email, "password": "kill-nine-password"}).encode()
    request = urllib.request.Request(url + "/auth/v1/signup", data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status != 200:
                raise RuntimeError(f"status {response.status}")
            answer = json.loads(response.read())
        record = {"email": email, "password": "kill-nine-password", "user_id": answer["user"]["id"],
                  "session_id": claims(answer["access_token"])["session_id"], "access_token": answer["access_token"]}
        with lock:
            out.write(json.dumps(record) + "\n")
    except Exception:
        with lock:
            failures += 1


with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
    list(pool.map(one, range(n)))
print(f"failures {failures}", file=sys.stderr)
