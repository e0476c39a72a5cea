#!/usr/bin/env python3
"""Writes the seed corpora Tests/Fuzz/corpus/<target>/ from the project's fixtures and tests.

Run from the repository root: python3 Tests/Fuzz/corpus/make-seeds.py. Sources, per target, are
named in Fuzz/README.md. Files are named by the SHA-1 of their bytes, as libFuzzer names
corpus files, so running this again adds nothing twice. Needs the openssl command (for PEMs).
"""
import base64, hashlib, json, os, re, subprocess, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
OUT = os.path.join(ROOT, "Tests", "Fuzz", "corpus")
LIMIT = 4096  # libFuzzer's default -max_len


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    data = data[:LIMIT]
    folder = os.path.join(OUT, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


# RFC 7515 Appendix A (Tests/JOSETests/Fixtures): tokens, their headers and payloads, their JWKs.
rfc = json.loads(read("Tests/JOSETests/Fixtures/rfc7515-appendix-a.json"))
payloads, jwks = [], []
for example in rfc["examples"]:
    token = example.get("jws")
    if token:
        put("jws", token)
        parts = token.split(".")
        payloads.append(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    if "jwk" in example:
        jwks.append(example["jwk"])
# Tokens written in the tests (VerifierTests and the others): any compact JWS literal.
for name in sorted(os.listdir(os.path.join(ROOT, "Tests/JOSETests"))):
    if name.endswith(".swift"):
        for token in re.findall(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*", read("Tests/JOSETests/" + name)):
            put("jws", token)
header = b64(b'{"alg":"HS256","kid":"hs","typ":"JWT"}')
for token in [header + ".e30.AAAA", b64(b'{"alg":"ES256","kid":"es"}') + ".e30." + "A" * 86, b64(b'{"alg":"none"}') + ".e30.x",
              b64(b'{"alg":"HS256","crit":["exp"]}') + ".e30.AAAA", b64(b'{"alg":"RS256","kid":7}') + ".e30.AAAA",
              '{"payload":"e30","signatures":[]}', "a.b", "a..c", "...", header + ".e30.AAAA=", header + ". e30.AAAA"]:
    put("jws", token)

# Claims: the RFC payloads, Supabase-shaped claims, and registered claims holding every kind of
# JSON value (the list: 1e308, -1e308, 1e-320, 2^63, -2^63-1, 2^64, long digit strings).
supabase = {"aud": "authenticated", "exp": 1750003600, "iat": 1750000000, "iss": "https://issuer.example/auth/v1",
            "sub": "8d0fbd0e-8ad0-4b6b-a8bb-4e1c1d7c0a11", "email": "a@example.com", "phone": "", "role": "authenticated",
            "aal": "aal1", "amr": [{"method": "password", "timestamp": 1750000000}], "session_id": "2b9f7c1e-0000-4000-8000-000000000001",
            "is_anonymous": False, "app_metadata": {"provider": "email", "providers": ["email"], "tenant_id": "acme", "groups": ["ops"]},
            "user_metadata": {"name": "A"}}
claims = [json.dumps(supabase).encode(), json.dumps(dict(supabase, role="anon", aal="aal2", is_anonymous=True)).encode()] + payloads
for value in ["1e308", "-1e308", "1e-320", "9223372036854775808", "-9223372036854775809", "18446744073709551616",
              "1" * 400, "0.5", "-1", "true", "null", '"1750000000"', "[1750000000]", "{}", "1.7500000000e9"]:
    for name in ["exp", "nbf", "iat"]:
        claims.append(('{"%s":%s,"sub":"u","role":"authenticated"}' % (name, value)).encode())
claims += [b'{"aud":["authenticated",1]}', b'{"aud":{}}', b'{"iss":5}', b'{"sub":null}', b'[]', b'"x"', b'{"a":{"a":{"a":{}}}}', b""]
for i, c in enumerate(claims):
    put("claims", bytes([i % 32]) + c)

# Keys: the RFC JWKs (selector 0), a JWKS of them, PEMs made with openssl as KeyLoadingTests
# makes them (selectors 3 and 6+), secrets (5).
for jwk in jwks:
    put("keys", b"\x00" + json.dumps(jwk).encode())
    public = {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
    put("keys", b"\x01" + json.dumps(public).encode())
put("keys", b"\x02" + json.dumps({"keys": [dict(j, kid="k%d" % i, use="sig") for i, j in enumerate(jwks)]}).encode())
put("keys", b"\x00" + json.dumps({"kty": "EC", "crv": "P-256", "x": "A" * 43, "y": "A" * 43}).encode())
put("keys", b"\x00" + json.dumps({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}).encode())
put("keys", b"\x00" + json.dumps({"kty": "oct", "k": b64(b"s" * 32), "alg": "HS512", "key_ops": ["sign"]}).encode())
with tempfile.TemporaryDirectory() as tmp:
    def openssl(*args):
        return subprocess.run(["openssl", *args], check=True, capture_output=True).stdout
    keyfiles = {
        "ec256": openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"),
        "ec384": openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"),
        "ed25519": openssl("genpkey", "-algorithm", "ED25519"),
        "rsa": openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"),
    }
    for name, pem in keyfiles.items():
        path = os.path.join(tmp, name + ".pem")
        with open(path, "wb") as f:
            f.write(pem)
        put("keys", b"\x03" + pem)
        put("keys", b"\x04" + openssl("pkey", "-in", path, "-pubout"))
        put("keys", b"\x06" + pem)
    rsa = os.path.join(tmp, "rsa.pem")
    put("keys", b"\x03" + openssl("rsa", "-in", rsa, "-RSAPublicKey_out"))
    put("keys", b"\x03" + openssl("rsa", "-in", rsa, "-traditional"))
    put("keys", b"\x03" + openssl("req", "-new", "-x509", "-key", rsa, "-subj", "/CN=test", "-days", "1"))
    put("keys", b"\x03" + openssl("ec", "-in", os.path.join(tmp, "ec256.pem")))
for secret in [b"s" * 32, b"s" * 64, b"short", b"\x00" * 48, b"-----BEGIN nothing-----"]:
    put("keys", b"\x05" + secret)
    put("keys", b"\x0e" + secret)

# Requests (fuzz-request, fuzz-http1): the cases of Tests/CLITests/DirectPathTests.swift
# (hostileHeadsAreRefusedAndServingGoesOn and the pipelining and body tests), for the fuzz
# gateway's routes; "@TOKEN@" is a valid token in the harness. Selector: piece size.
requests = [
    b"GET /public/a HTTP/1.1\r\nHost: gw.example\r\n\r\n",
    b"GET /api/items?x=1 HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer @TOKEN@\r\n\r\n",
    b"POST /api/items HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer @TOKEN@\r\nContent-Length: 2\r\n\r\n{}",
    b"PUT /api/items/1 HTTP/1.1\r\nHost: gw.example\r\napikey: @TOKEN@\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"GET /api/items HTTP/1.1\r\nHost: gw.example\r\nCookie: a=b; sb-access-token=@TOKEN@\r\n\r\n",
    b"GET /api/items?access_token=@TOKEN@ HTTP/1.1\r\nHost: gw.example\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: secure.example.\r\nAuthorization: Bearer @TOKEN@\r\nX-Forwarded-For: 10.0.0.1\r\nX-Request-Id: abc-123\r\n\r\n",
    b"HEAD /opt HTTP/1.1\r\nHost: gw.example\r\nConnection: close\r\n\r\n",
    b"OPTIONS /api/items HTTP/1.1\r\nHost: gw.example\r\nOrigin: http://app.example\r\nAccess-Control-Request-Method: POST\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: gw.example\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: gw.example\r\n\r\nGET /readyz HTTP/1.1\r\nHost: gw.example\r\n\r\nGET /metrics HTTP/1.1\r\nHost: gw.example\r\n\r\n",
    b"POST /public/up HTTP/1.1\r\nHost: gw.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /public/a HTTP/1.1\r\nHost: gw.example\r\n\r\n" * 3,
    b"GET /public/a HTTP/1.0\r\nHost: gw.example\r\n\r\n",
    b"GET /public/a HTTP/1.1\r\nHost: gw.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"GET /public/a HTTP/1.1\r\nHost: gw.example\r\nX-HTTP-Method-Override: DELETE\r\nX_Forwarded_For: 1.2.3.4\r\nX-User-Id: me\r\n\r\n",
    b"CONNECT gw.example:443 HTTP/1.1\r\nHost: gw.example\r\n\r\n",
    b"\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/1.1\n\n", b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    b"GET /public/a HTTP/1.1\r\nHost: x\r\n  folded\r\n\r\n", b"GET /public/a HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
    b"GET /public/a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"GET /public/a HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    b"GET http://user@evil/public/a HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /public/../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /public/%2e%2e/x HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /public/..;/api/x HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /public/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a.b.c\r\nAuthorization: Bearer d.e.f\r\n\r\n",
    b"GET /public/a HTTP/2.0\r\nHost: x\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"G\xffT /public/a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /public/a HTTP/1.1\r\nHost : x\r\n\r\n", b"get /public/a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /public/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"GET /public/a HTTP/1.1\r\nHost: x\r\nConnection: close, x-user-id\r\n\r\n",
    b"GET /public/a HTTP/1.1\r\nHost: x\r\nX-Request-Id: " + b"\xc3\xa9" * 100 + b"\r\n\r\n",
    b"GET /public/a#frag HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
    b"POST /public/a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
]
for i, r in enumerate(requests):
    put("request", bytes([0 if i % 3 else 1 + i % 15]) + r)
    put("http1", bytes([0 if i % 4 else 1 + i % 15]) + r)

# Responses (fuzz-response): Tests/Integration/upstream.py's answers and the response-head
# cases of the tests. Selector: the request (low bits) and the path (0x80: full path).
responses = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nuntil-close-body",
    b"HTTP/1.1 2x0 Nope\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nX-Kind: no-content\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhints",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Secret, keep-alive\r\nX-Secret: internal\r\nKeep-Alive: timeout=5\r\nX-Request-Id: upstream-made\r\nX-Kept: yes\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnope\r\n0\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\nafter",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\nETag: \"x\"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nVary: Origin\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffff\r\n",
    b"HTTP/1.1 500 Internal\x01Error\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
]
for i, r in enumerate(responses):
    put("response", bytes([i]) + r)
    put("response", bytes([0x80 | (i * 3)]) + r)

# gateway.conf (fuzz-config): the repository's gateway.conf, every config written in
# Tests/GatewayTests/ConfigTests.swift and CORSTests.swift, and the fuzz gateway's own.
put("config", read("gateway.conf"))
for name in ["ConfigTests.swift", "CORSTests.swift", "ByteScanTests.swift"]:
    text = read("Tests/GatewayTests/" + name)
    for block in re.findall(r'"""\n(.*?)"""', text, re.S):
        put("config", re.sub(r"^ {8}", "", block, flags=re.M).replace('\\"', '"'))
    for line in re.findall(r'\("(\[[^"\n]*?(?:\\"[^"\n]*?)*)", "line', text):
        put("config", line.encode().decode("unicode_escape"))
support = read("Fuzz/GatewaySupport/FuzzGateway.swift")
for block in re.findall(r'"""\n(.*?)"""', support, re.S):
    put("config", re.sub(r"^ {8}", "", block, flags=re.M).replace("\\(folder)", "/tmp/gw").replace("\\(issuer)", "https://issuer.example/auth/v1"))

# Local API bodies (fuzz-api): what supabase-js and the interop tests send
# (Tests/Interop/supabase_client.py, Tests/CLITests/RuntimeServeTests.swift).
bodies = [
    (0, b'{"email":"a@example.com","password":"correct horse","data":{"name":"A"}}'),
    (0, b'{"email":"a@example.com","password":"' + b"x" * 300 + b'"}'),
    (1, b'{"email":"a@example.com","password":"correct horse"}'),
    (1, b'{"email":"A@Example.com","password":"wrong"}'),
    (2, b'{"refresh_token":"abcdefghijklmnop"}'),
    (3, b'{"session_id":"2b9f7c1e-0000-4000-8000-000000000001","tenant_id":"acme","contract":"default","metadata":{"device":"x"},"ttl":3600}'),
    (3, b'{"ttl":1e308}'), (3, b'{"ttl":-1}'), (3, b'{"metadata":[]}'), (3, b"not json"), (3, b""),
    (4, b""), (5, b""), (6, b""), (7, b""),
    (0x20, b'{"email":1,"password":null}'), (0x11, b'{"email":"","password":""}'),
]
for selector, body in bodies:
    put("api", bytes([selector]) + body)
print("seeds written under", OUT)
