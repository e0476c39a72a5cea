#!/usr/bin/env python3
"""Drives the official PyPI client `supabase-auth` (2.34.1) against the gateway.

The Swift test suite runs:

    python3 supabase_client.py --url http://127.0.0.1:PORT/auth/v1 \
                               --session-api http://127.0.0.1:PORT

With a fresh random email and the password "correct-horse-battery-1" it runs,
in order (each step isolated, recorded as "ok" or "error: <type>: <message>"):

   1 sign_up                  sign_up returns a session and the user
   2 sign_up_duplicate        same email again: AuthApiError 422 user_already_exists
   3 wrong_password           sign_in_with_password, bad password:
                              AuthApiError 400 invalid_credentials
   4 sign_in                  sign_in_with_password returns a session; the
                              access token's session_id claim is read
   5 session_exists           GET {session-api}/api/session/{sid} (Bearer) is 200
                              with JSON "id" == sid
   6 get_user                 client.get_user() returns the same email
   7 get_claims               client.get_claims() (JWKS + local ES256 check):
                              sub == user id, session_id == sid
   8 refresh_session          client.refresh_session(): new refresh token,
                              same session_id
   9 refresh_reuse            the old (used) refresh token again:
                              AuthApiError 400 refresh_token_already_used
     sign_in_again            the reuse revoked the session: sign in again
  10 sign_out                 client.sign_out() succeeds and its POST /logout
                              was answered 2xx (the client itself ignores
                              401/403/404 there, so the status is read on the
                              wire through an httpx response hook)
  11 session_gone             GET {session-api}/api/session/{sid} with the old
                              access token answers 404 or 401
  12 get_user_after_sign_out  GET {url}/user with the old access token answers
                              403 with code "session_not_found"

Prints one JSON object on stdout:
    {"steps": {name: "ok" | "error: ..."}, "passed": N, "failed": M,
     "info": {"email": ..., "client": "supabase-auth 2.34.1",
              "http": ["POST /auth/v1/signup -> 200", ...]}}
Exit status: 0 if every step is "ok", 1 otherwise, 2 on a usage error.
Dependencies: the standard library and supabase-auth==2.34.1 (unmodified).
"""

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request
import uuid

PASSWORD = "correct-horse-battery-1"
WRONG_PASSWORD = "wrong-horse-battery-9"
API_VERSION = "2024-01-01"
HTTP_TIMEOUT = 30

STEP_NAMES = [
    "sign_up",
    "sign_up_duplicate",
    "wrong_password",
    "sign_in",
    "session_exists",
    "get_user",
    "get_claims",
    "refresh_session",
    "refresh_reuse",
    "sign_in_again",
    "sign_out",
    "session_gone",
    "get_user_after_sign_out",
]


class StepFailure(Exception):
    """A step ran but the answer was not the expected one."""


def describe(exc):
    """'<type>: <message>' plus status and code when the exception has them."""
    text = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
    extras = []
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", None)
    if status is not None:
        extras.append(f"status={status}")
    if code is not None:
        extras.append(f"code={code}")
    if extras and not isinstance(exc, StepFailure):
        text += " (" + ", ".join(extras) + ")"
    return text


def b64url_json(part):
    padded = part + "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def jwt_payload(token):
    """The payload of a compact JWS, decoded without verification."""
    parts = token.split(".")
    if len(parts) != 3:
        raise StepFailure(f"access token is not a compact JWS ({len(parts)} parts)")
    payload = b64url_json(parts[1])
    if not isinstance(payload, dict):
        raise StepFailure("access token payload is not a JSON object")
    return payload


def http_get(url, token, extra_headers=None):
    """GET with a Bearer token; returns (status, headers dict, body text)."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    headers.update(extra_headers or {})
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            return response.status, dict(response.headers), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        body = error.read().decode("utf-8", "replace")
        return error.code, dict(error.headers or {}), body


def short(text, limit=400):
    text = text if isinstance(text, str) else repr(text)
    return text if len(text) <= limit else text[:limit] + "..."


def expect_api_error(exc, status, code):
    """Checks that exc is AuthApiError(status, code); raises StepFailure otherwise."""
    from supabase_auth.errors import AuthApiError

    if not isinstance(exc, AuthApiError):
        raise StepFailure(
            f"expected AuthApiError status={status} code={code}, got {describe(exc)}"
        )
    if exc.status != status or exc.code != code:
        raise StepFailure(
            f"expected AuthApiError status={status} code={code}, "
            f"got AuthApiError status={exc.status} code={exc.code} message={exc.message!r}"
        )


def check_session(response, email, what):
    session = getattr(response, "session", None)
    if session is None:
        raise StepFailure(f"{what} returned no session (user={getattr(response, 'user', None)!r})")
    if not session.access_token or not session.refresh_token:
        raise StepFailure(f"{what} session lacks access_token or refresh_token")
    user = response.user or session.user
    if user is None:
        raise StepFailure(f"{what} returned no user")
    if (user.email or "").lower() != email.lower():
        raise StepFailure(f"{what} user email {user.email!r} != {email!r}")
    return session, user


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the client URL, e.g. http://127.0.0.1:8080/auth/v1")
    parser.add_argument("--session-api", required=True, help="the gateway base URL, e.g. http://127.0.0.1:8080")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return 2 if exit_.code not in (0, None) else 0

    auth_url = args.url.rstrip("/")
    session_api = args.session_api.rstrip("/")
    if not auth_url.startswith(("http://", "https://")) or not session_api.startswith(("http://", "https://")):
        print("error: --url and --session-api must be http(s) URLs", file=sys.stderr)
        return 2

    try:
        import httpx
        from supabase_auth import SyncGoTrueClient
        from supabase_auth.errors import AuthApiError  # noqa: F401
        from supabase_auth.version import __version__ as client_version
    except Exception as exc:  # pragma: no cover - setup problem
        print(f"error: cannot import supabase_auth: {exc}", file=sys.stderr)
        return 2

    email = f"py-{uuid.uuid4().hex[:10]}@example.com"
    steps = {}
    state = {}

    def need(key):
        if key not in state:
            raise StepFailure(f"not run: needs {key} from an earlier step that failed")
        return state[key]

    def run(name, func):
        try:
            func()
            steps[name] = "ok"
        except Exception as exc:  # each step is isolated
            steps[name] = f"error: {describe(exc)}"

    # The client's own transport settings (see SyncGoTrueBaseAPI), plus a hook
    # that records each answer: sign_out swallows 401/403/404, so the step
    # checks the logout status on the wire.
    trace = []

    def record(response):
        trace.append((response.request.method, response.request.url.path, response.status_code))

    http_client = httpx.Client(follow_redirects=True, http2=True, event_hooks={"response": [record]})
    client = SyncGoTrueClient(url=auth_url, auto_refresh_token=False, http_client=http_client)

    # 1. sign up
    def sign_up():
        response = client.sign_up({"email": email, "password": PASSWORD})
        session, user = check_session(response, email, "sign_up")
        state["user_id"] = user.id

    # 2. duplicate sign up
    def sign_up_duplicate():
        try:
            response = client.sign_up({"email": email, "password": PASSWORD})
        except Exception as exc:
            expect_api_error(exc, 422, "user_already_exists")
            return
        raise StepFailure(
            "expected AuthApiError status=422 code=user_already_exists, "
            f"but sign_up succeeded (session={'yes' if response.session else 'no'})"
        )

    # 3. wrong password
    def wrong_password():
        try:
            client.sign_in_with_password({"email": email, "password": WRONG_PASSWORD})
        except Exception as exc:
            expect_api_error(exc, 400, "invalid_credentials")
            return
        raise StepFailure("expected AuthApiError status=400 code=invalid_credentials, but sign-in succeeded")

    # 4. sign in
    def sign_in():
        response = client.sign_in_with_password({"email": email, "password": PASSWORD})
        session, user = check_session(response, email, "sign_in_with_password")
        if state.get("user_id") and user.id != need("user_id"):
            raise StepFailure(f"user id {user.id!r} != sign-up user id {state['user_id']!r}")
        state["user_id"] = user.id
        claims = jwt_payload(session.access_token)
        session_id = claims.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise StepFailure(f"access token has no session_id claim: {sorted(claims)}")
        state["session_id"] = session_id
        state["access_token"] = session.access_token
        state["refresh_token"] = session.refresh_token

    # 5. the gateway's session API sees the session
    def session_exists():
        sid, token = need("session_id"), need("access_token")
        status, _headers, body = http_get(f"{session_api}/api/session/{sid}", token)
        if status != 200:
            raise StepFailure(f"GET /api/session/{sid} answered {status}, expected 200: {short(body)}")
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("id") != sid:
            raise StepFailure(f"GET /api/session/{sid} answered id={data.get('id') if isinstance(data, dict) else None!r}")

    # 6. get_user with the current session
    def get_user():
        response = client.get_user()
        if response is None or response.user is None:
            raise StepFailure("get_user returned no user")
        if (response.user.email or "").lower() != email.lower():
            raise StepFailure(f"get_user email {response.user.email!r} != {email!r}")
        if state.get("user_id") and response.user.id != need("user_id"):
            raise StepFailure(f"get_user id {response.user.id!r} != {state['user_id']!r}")

    # 7. get_claims (JWKS fetch and local signature check)
    def get_claims():
        response = client.get_claims()
        if not response:
            raise StepFailure("get_claims returned nothing")
        claims = response["claims"]
        headers = response["headers"]
        if headers.get("alg") != "ES256" or not headers.get("kid"):
            raise StepFailure(f"expected an ES256 token with a kid, header={headers!r}")
        if claims.get("sub") != need("user_id"):
            raise StepFailure(f"claims sub {claims.get('sub')!r} != user id {state['user_id']!r}")
        if claims.get("session_id") != need("session_id"):
            raise StepFailure(f"claims session_id {claims.get('session_id')!r} != {state['session_id']!r}")

    # 8. refresh rotation
    def refresh_session():
        old = need("refresh_token")
        response = client.refresh_session()
        session = response.session
        if session is None or not session.refresh_token or not session.access_token:
            raise StepFailure("refresh_session returned no session")
        if session.refresh_token == old:
            raise StepFailure("refresh_session returned the same refresh token")
        sid = jwt_payload(session.access_token).get("session_id")
        if sid != need("session_id"):
            raise StepFailure(f"refreshed access token session_id {sid!r} != {state['session_id']!r}")
        state["used_refresh_token"] = old
        state["refresh_token"] = session.refresh_token
        state["access_token"] = session.access_token

    # 9. reuse of the used refresh token
    def refresh_reuse():
        old = need("used_refresh_token")
        try:
            response = client.refresh_session(old)
        except Exception as exc:
            expect_api_error(exc, 400, "refresh_token_already_used")
            return
        got = response.session.refresh_token if response.session else None
        raise StepFailure(
            "expected AuthApiError status=400 code=refresh_token_already_used, "
            "but the refresh succeeded"
            + (" and returned the currently active refresh token" if got == need("refresh_token") else "")
        )

    # 9b. the reuse revoked the session: sign in again
    def sign_in_again():
        response = client.sign_in_with_password({"email": email, "password": PASSWORD})
        session, user = check_session(response, email, "sign_in_with_password")
        sid = jwt_payload(session.access_token).get("session_id")
        if not isinstance(sid, str) or not sid:
            raise StepFailure("access token has no session_id claim")
        if sid == state.get("session_id"):
            raise StepFailure(f"the new sign-in reused the old session_id {sid!r}")
        state["final_session_id"] = sid
        state["final_access_token"] = session.access_token

    # 10. sign out
    def sign_out():
        need("final_access_token")
        start = len(trace)
        client.sign_out()
        logouts = [t for t in trace[start:] if t[1].endswith("/logout")]
        if len(logouts) != 1 or not 200 <= logouts[0][2] < 300:
            raise StepFailure(f"expected one POST /logout answered 2xx, got {logouts!r}")
        if client.get_session() is not None:
            raise StepFailure("the client still holds a session after sign_out")

    # 11. the signed-out session is gone from the session API
    def session_gone():
        sid, token = need("final_session_id"), need("final_access_token")
        status, _headers, body = http_get(f"{session_api}/api/session/{sid}", token)
        if status not in (404, 401):
            raise StepFailure(f"GET /api/session/{sid} answered {status}, expected 404 or 401: {short(body)}")

    # 12. /user with the old access token
    def get_user_after_sign_out():
        token = need("final_access_token")
        status, headers, body = http_get(
            f"{auth_url}/user", token, {"X-Supabase-Api-Version": API_VERSION}
        )
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        code = data.get("code") if isinstance(data, dict) else None
        if status != 403 or code != "session_not_found":
            raise StepFailure(
                f"GET /user answered {status} code={code!r}, expected 403 session_not_found: {short(body)}"
            )

    for name, func in [
        ("sign_up", sign_up),
        ("sign_up_duplicate", sign_up_duplicate),
        ("wrong_password", wrong_password),
        ("sign_in", sign_in),
        ("session_exists", session_exists),
        ("get_user", get_user),
        ("get_claims", get_claims),
        ("refresh_session", refresh_session),
        ("refresh_reuse", refresh_reuse),
        ("sign_in_again", sign_in_again),
        ("sign_out", sign_out),
        ("session_gone", session_gone),
        ("get_user_after_sign_out", get_user_after_sign_out),
    ]:
        run(name, func)

    try:
        client.close()
    except Exception:
        pass

    passed = sum(1 for name in STEP_NAMES if steps.get(name) == "ok")
    failed = len(STEP_NAMES) - passed
    print(json.dumps({
        "steps": {name: steps.get(name, "error: not run") for name in STEP_NAMES},
        "passed": passed,
        "failed": failed,
        "info": {
            "email": email,
            "client": f"supabase-auth {client_version}",
            "http": [f"{m} {p} -> {c}" for m, p, c in trace],
        },
    }))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
