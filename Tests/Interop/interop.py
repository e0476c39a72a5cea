#!/usr/bin/env python3
"""JWT interoperability helper: PyJWT / jwcrypto <-> the Swift JWT gateway.

The Swift test suite drives this script through three sub-commands.

Key folder (DIR), all PEM private keys PKCS#8 ("BEGIN PRIVATE KEY"), unencrypted:

    hs256.secret hs384.secret hs512.secret   raw HMAC secret bytes (read as-is)
    rsa.pem                                  RSA 2048 (RS256/384/512, PS256/384/512)
    es256.pem es384.pem es512.pem            EC P-256 / P-384 / P-521
    ed25519.pem                              Ed25519 (EdDSA)

A key's kid is its file name without the extension ("rsa", "es256", "hs256", ...).

Commands:

  sign --lib pyjwt|jwcrypto --keys DIR --out FILE [--iss ISS] [--aud AUD]
      Signs a Supabase-style claims set for each of the 13 algorithms
      (HS256 HS384 HS512 RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512
      EdDSA) with header {"alg", "kid", "typ": "JWT"} and writes FILE as JSON:
      {"ALG": {"token": ..., "sub": ..., "session_id": ..., "kid": ...}, ...}.

  verify --lib pyjwt|jwcrypto --keys DIR --tokens FILE [--iss ISS] [--aud AUD]
      FILE is JSON {"ALG": "token", ...}. Each token is verified with the public
      part of the matching key (the secret for HS*), allowing only ALG, and
      enforcing exp, iss, aud, the header kid, and (ES*) a raw r||s signature
      of the right length. Prints {"ALG": "ok" | "error: <message>", ...} to
      stdout; exits 0 if every entry is "ok", 1 otherwise.

  selftest --keys DIR
      Generates a fresh key folder in DIR, signs with each library and verifies
      with the other (13 x 2), runs a few negative checks, exits 0 only if all
      pass.

Defaults: ISS = "http://127.0.0.1:8080/auth/v1", AUD = "authenticated".
Exit status 2 means a usage or setup error (message on stderr).
Dependencies: the standard library, PyJWT, jwcrypto, cryptography. No network.
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

DEFAULT_ISS = "http://127.0.0.1:8080/auth/v1"
DEFAULT_AUD = "authenticated"
LIBS = ("pyjwt", "jwcrypto")

# algorithm -> (key file name, kid)
ALGORITHMS = {
    "HS256": "hs256.secret",
    "HS384": "hs384.secret",
    "HS512": "hs512.secret",
    "RS256": "rsa.pem",
    "RS384": "rsa.pem",
    "RS512": "rsa.pem",
    "PS256": "rsa.pem",
    "PS384": "rsa.pem",
    "PS512": "rsa.pem",
    "ES256": "es256.pem",
    "ES384": "es384.pem",
    "ES512": "es512.pem",
    "EdDSA": "ed25519.pem",
}

# Raw r||s signature length (bytes) for ECDSA algorithms.
ES_SIGNATURE_LENGTH = {"ES256": 64, "ES384": 96, "ES512": 132}


class SetupError(Exception):
    """A usage or environment problem (exit status 2)."""


def eprint(*args):
    print(*args, file=sys.stderr)


def kid_for(alg):
    return os.path.splitext(ALGORITHMS[alg])[0]


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def import_libs(lib):
    """Import the libraries a command needs, with a helpful error if missing."""
    try:
        import cryptography  # noqa: F401
        if lib in (None, "pyjwt"):
            import jwt  # noqa: F401
        if lib in (None, "jwcrypto"):
            import jwcrypto  # noqa: F401
    except ImportError as exc:
        here = os.path.dirname(os.path.abspath(__file__))
        raise SetupError(
            "missing Python package (%s); install with: python3 -m pip install -r %s"
            % (exc, os.path.join(here, "requirements.txt"))
        ) from exc


def read_key_file(keys_dir, alg):
    path = os.path.join(keys_dir, ALGORITHMS[alg])
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise SetupError("cannot read key file for %s: %s" % (alg, exc)) from exc


# --------------------------------------------------------------------------
# Key loading per library
# --------------------------------------------------------------------------

def pyjwt_signing_key(keys_dir, alg):
    data = read_key_file(keys_dir, alg)
    if alg.startswith("HS"):
        return data
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    return load_pem_private_key(data, password=None)


def pyjwt_verification_key(keys_dir, alg):
    key = pyjwt_signing_key(keys_dir, alg)
    if alg.startswith("HS"):
        return key
    return key.public_key()


def jwcrypto_signing_key(keys_dir, alg):
    from jwcrypto import jwk
    data = read_key_file(keys_dir, alg)
    if alg.startswith("HS"):
        return jwk.JWK(kty="oct", k=b64url_encode(data))
    return jwk.JWK.from_pem(data)


def jwcrypto_verification_key(keys_dir, alg):
    key = jwcrypto_signing_key(keys_dir, alg)
    if alg.startswith("HS"):
        return key
    from jwcrypto import jwk
    return jwk.JWK(**key.export_public(as_dict=True))


# --------------------------------------------------------------------------
# sign
# --------------------------------------------------------------------------

def make_claims(alg, lib, iss, aud):
    now = int(time.time())
    return {
        "iss": iss,
        "sub": str(uuid.uuid4()),
        "aud": aud,
        "exp": now + 3600,
        "iat": now,
        "email": "interop@example.com",
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": now}],
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
        "alg_under_test": alg,
        "lib": lib,
    }


def sign_one(lib, keys_dir, alg, claims):
    kid = kid_for(alg)
    if lib == "pyjwt":
        import jwt
        key = pyjwt_signing_key(keys_dir, alg)
        token = jwt.encode(claims, key, algorithm=alg,
                           headers={"kid": kid, "typ": "JWT"})
        return token if isinstance(token, str) else token.decode("ascii")
    if lib == "jwcrypto":
        from jwcrypto import jwt as jwcrypto_jwt
        key = jwcrypto_signing_key(keys_dir, alg)
        token = jwcrypto_jwt.JWT(header={"alg": alg, "kid": kid, "typ": "JWT"},
                                 claims=claims)
        token.make_signed_token(key)
        return token.serialize(compact=True)
    raise SetupError("unknown lib %r" % lib)


def sign_all(lib, keys_dir, iss, aud):
    out = {}
    for alg in ALGORITHMS:
        claims = make_claims(alg, lib, iss, aud)
        try:
            token = sign_one(lib, keys_dir, alg, claims)
        except SetupError:
            raise
        except Exception as exc:
            raise SetupError("%s failed to sign %s: %s: %s"
                             % (lib, alg, type(exc).__name__, exc)) from exc
        out[alg] = {
            "token": token,
            "sub": claims["sub"],
            "session_id": claims["session_id"],
            "kid": kid_for(alg),
        }
    return out


def cmd_sign(args):
    import_libs(args.lib)
    result = sign_all(args.lib, args.keys, args.iss, args.aud)
    try:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
            fh.write("\n")
    except OSError as exc:
        raise SetupError("cannot write %s: %s" % (args.out, exc)) from exc
    eprint("%s: signed %d tokens -> %s" % (args.lib, len(result), args.out))
    return 0


# --------------------------------------------------------------------------
# verify
# --------------------------------------------------------------------------

class VerificationError(Exception):
    pass


def check_structure(token, alg):
    """Library-independent checks: compact form, kid, ES raw signature size."""
    parts = token.split(".")
    if len(parts) != 3:
        raise VerificationError("not a compact JWS (%d segments)" % len(parts))
    try:
        header = json.loads(b64url_decode(parts[0]))
    except Exception as exc:
        raise VerificationError("undecodable header: %s" % exc) from exc
    if not isinstance(header, dict):
        raise VerificationError("header is not a JSON object")
    if header.get("alg") != alg:
        raise VerificationError("header alg %r != expected %r"
                                % (header.get("alg"), alg))
    expected_kid = kid_for(alg)
    if header.get("kid") != expected_kid:
        raise VerificationError("header kid %r != expected %r"
                                % (header.get("kid"), expected_kid))
    if alg in ES_SIGNATURE_LENGTH:
        try:
            sig = b64url_decode(parts[2])
        except Exception as exc:
            raise VerificationError("undecodable signature: %s" % exc) from exc
        if len(sig) != ES_SIGNATURE_LENGTH[alg]:
            raise VerificationError(
                "%s signature is %d bytes, expected raw r||s of %d bytes"
                % (alg, len(sig), ES_SIGNATURE_LENGTH[alg]))


def verify_pyjwt(token, key, alg, iss, aud):
    import jwt
    claims = jwt.decode(
        token,
        key,
        algorithms=[alg],
        issuer=iss,
        audience=aud,
        options={
            "require": ["exp", "iss", "aud"],
            "verify_signature": True,
            "verify_exp": True,
            "verify_iss": True,
            "verify_aud": True,
        },
    )
    header = jwt.get_unverified_header(token)
    if header.get("kid") != kid_for(alg):
        raise VerificationError("kid mismatch: %r" % header.get("kid"))
    return claims


def verify_jwcrypto(token, key, alg, iss, aud):
    from jwcrypto import jwt as jwcrypto_jwt
    parsed = jwcrypto_jwt.JWT(
        jwt=token,
        key=key,
        algs=[alg],
        expected_type="JWS",
        check_claims={"exp": None, "iss": iss, "aud": aud},
    )
    header = json.loads(parsed.header)
    if header.get("kid") != kid_for(alg):
        raise VerificationError("kid mismatch: %r" % header.get("kid"))
    return json.loads(parsed.claims)


def verify_all(lib, keys_dir, tokens, iss, aud, structural_checks=True):
    """Returns {ALG: "ok" | "error: ..."} for every entry of tokens.

    structural_checks=False skips the library-independent pre-checks so that
    the selftest can confirm the library itself rejects bad tokens.
    """
    results = {}
    for alg, token in tokens.items():
        try:
            if alg not in ALGORITHMS:
                raise VerificationError("unsupported algorithm %r" % alg)
            if isinstance(token, dict):  # accept the output format of `sign`
                token = token.get("token")
            if not isinstance(token, str):
                raise VerificationError("token is not a string")
            token = token.strip()
            if structural_checks:
                check_structure(token, alg)
            if lib == "pyjwt":
                key = pyjwt_verification_key(keys_dir, alg)
                verify_pyjwt(token, key, alg, iss, aud)
            elif lib == "jwcrypto":
                key = jwcrypto_verification_key(keys_dir, alg)
                verify_jwcrypto(token, key, alg, iss, aud)
            else:
                raise SetupError("unknown lib %r" % lib)
            results[alg] = "ok"
        except VerificationError as exc:
            results[alg] = "error: %s" % exc
        except Exception as exc:
            results[alg] = "error: %s: %s" % (type(exc).__name__, exc)
    return results


def load_tokens(path):
    try:
        with open(path, "r", encoding="utf-8") as fh:
            tokens = json.load(fh)
    except (OSError, ValueError) as exc:
        raise SetupError("cannot read tokens file %s: %s" % (path, exc)) from exc
    if not isinstance(tokens, dict) or not tokens:
        raise SetupError("tokens file %s must be a non-empty JSON object "
                         "{\"ALG\": \"token\", ...}" % path)
    return tokens


def cmd_verify(args):
    import_libs(args.lib)
    if not os.path.isdir(args.keys):
        raise SetupError("key folder %s does not exist" % args.keys)
    tokens = load_tokens(args.tokens)
    results = verify_all(args.lib, args.keys, tokens, args.iss, args.aud)
    print(json.dumps(results, indent=2))
    failed = [alg for alg, r in results.items() if r != "ok"]
    for alg in failed:
        eprint("%s: %s %s" % (args.lib, alg, results[alg]))
    return 0 if not failed else 1


# --------------------------------------------------------------------------
# selftest
# --------------------------------------------------------------------------

def generate_keys(keys_dir):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    os.makedirs(keys_dir, exist_ok=True)

    def write(name, data, mode=0o600):
        path = os.path.join(keys_dir, name)
        with open(path, "wb") as fh:
            fh.write(data)
        os.chmod(path, mode)

    def pkcs8(key):
        return key.private_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        )

    for name in ("hs256.secret", "hs384.secret", "hs512.secret"):
        write(name, os.urandom(64))
    write("rsa.pem", pkcs8(rsa.generate_private_key(public_exponent=65537,
                                                    key_size=2048)))
    write("es256.pem", pkcs8(ec.generate_private_key(ec.SECP256R1())))
    write("es384.pem", pkcs8(ec.generate_private_key(ec.SECP384R1())))
    write("es512.pem", pkcs8(ec.generate_private_key(ec.SECP521R1())))
    write("ed25519.pem", pkcs8(ed25519.Ed25519PrivateKey.generate()))


def tamper_signature(token):
    head, payload, sig = token.split(".")
    raw = bytearray(b64url_decode(sig))
    raw[len(raw) // 2] ^= 0x01
    return ".".join([head, payload, b64url_encode(bytes(raw))])


def der_signature(token):
    """Re-encode a raw r||s ECDSA signature as ASN.1 DER (must be rejected)."""
    from cryptography.hazmat.primitives.asymmetric.utils import (
        encode_dss_signature)
    head, payload, sig = token.split(".")
    raw = b64url_decode(sig)
    half = len(raw) // 2
    der = encode_dss_signature(int.from_bytes(raw[:half], "big"),
                               int.from_bytes(raw[half:], "big"))
    return ".".join([head, payload, b64url_encode(der)])


def resign_header(lib, keys_dir, alg, claims, header_overrides):
    """Token signed correctly but with a modified header (e.g. wrong kid)."""
    if lib == "pyjwt":
        import jwt
        headers = {"kid": kid_for(alg), "typ": "JWT"}
        headers.update(header_overrides)
        return jwt.encode(claims, pyjwt_signing_key(keys_dir, alg),
                          algorithm=alg, headers=headers)
    from jwcrypto import jwt as jwcrypto_jwt
    header = {"alg": alg, "kid": kid_for(alg), "typ": "JWT"}
    header.update(header_overrides)
    token = jwcrypto_jwt.JWT(header=header, claims=claims)
    token.make_signed_token(jwcrypto_signing_key(keys_dir, alg))
    return token.serialize()


def negative_cases(signer, keys_dir, signed, iss, aud):
    """(description, {ALG: token}) pairs that every verifier must reject."""
    cases = []
    for alg in ("HS256", "RS256", "PS256", "ES256", "ES512", "EdDSA"):
        cases.append(("tampered signature %s" % alg,
                      {alg: tamper_signature(signed[alg]["token"])}))
    # An HS256 token presented as HS384 (algorithm not allowed).
    cases.append(("HS256 token checked as HS384",
                  {"HS384": signed["HS256"]["token"]}))
    # RS256 token checked as PS256 (same key, different algorithm).
    cases.append(("RS256 token checked as PS256",
                  {"PS256": signed["RS256"]["token"]}))
    now = int(time.time())
    base = make_claims("ES384", signer, iss, aud)
    expired = dict(base, exp=now - 600, iat=now - 4200)
    cases.append(("expired ES384",
                  {"ES384": sign_one(signer, keys_dir, "ES384", expired)}))
    cases.append(("wrong aud RS384",
                  {"RS384": sign_one(signer, keys_dir, "RS384",
                                     dict(make_claims("RS384", signer, iss, aud),
                                          aud="someone-else"))}))
    cases.append(("wrong iss HS512",
                  {"HS512": sign_one(signer, keys_dir, "HS512",
                                     dict(make_claims("HS512", signer, iss, aud),
                                          iss=iss + "/evil"))}))
    no_exp = make_claims("PS384", signer, iss, aud)
    del no_exp["exp"]
    cases.append(("missing exp PS384",
                  {"PS384": sign_one(signer, keys_dir, "PS384", no_exp)}))
    cases.append(("DER-encoded ES256 signature",
                  {"ES256": der_signature(signed["ES256"]["token"])}))
    cases.append(("wrong kid ES256",
                  {"ES256": resign_header(signer, keys_dir, "ES256",
                                          make_claims("ES256", signer, iss, aud),
                                          {"kid": "rsa"})}))
    return cases


def cmd_selftest(args):
    import_libs(None)
    iss, aud = DEFAULT_ISS, DEFAULT_AUD
    keys_dir = os.path.abspath(args.keys)
    generate_keys(keys_dir)
    print("generated keys in %s" % keys_dir)

    all_ok = True
    script = os.path.abspath(__file__)
    with tempfile.TemporaryDirectory(prefix="interop-selftest-") as tmp:
        for signer, verifier in (("pyjwt", "jwcrypto"), ("jwcrypto", "pyjwt")):
            signed_path = os.path.join(tmp, "signed-%s.json" % signer)
            tokens_path = os.path.join(tmp, "tokens-%s.json" % signer)

            # Drive the real CLI so the contract used by Swift is exercised.
            sign = subprocess.run(
                [sys.executable, script, "sign", "--lib", signer,
                 "--keys", keys_dir, "--out", signed_path],
                capture_output=True, text=True)
            if sign.returncode != 0:
                print("FAIL sign --lib %s (exit %d): %s"
                      % (signer, sign.returncode, sign.stderr.strip()))
                all_ok = False
                continue
            with open(signed_path, encoding="utf-8") as fh:
                signed = json.load(fh)
            with open(tokens_path, "w", encoding="utf-8") as fh:
                json.dump({alg: e["token"] for alg, e in signed.items()}, fh)

            verify = subprocess.run(
                [sys.executable, script, "verify", "--lib", verifier,
                 "--keys", keys_dir, "--tokens", tokens_path],
                capture_output=True, text=True)
            try:
                results = json.loads(verify.stdout)
            except ValueError:
                print("FAIL verify --lib %s: unparsable output %r, stderr: %s"
                      % (verifier, verify.stdout, verify.stderr.strip()))
                all_ok = False
                continue
            print("\n%s -> %s (verify exit %d)"
                  % (signer, verifier, verify.returncode))
            for alg in ALGORITHMS:
                status = results.get(alg, "error: missing from output")
                print("  %-6s %s" % (alg, status))
                if status != "ok":
                    all_ok = False
            if verify.returncode != 0 or set(results) != set(ALGORITHMS):
                all_ok = False

            # Negative checks: the verifier must reject these, both with the
            # script's own pre-checks and with the library alone.
            print("  negative checks (%s must reject; shown: library alone):"
                  % verifier)
            for desc, tokens in negative_cases(signer, keys_dir, signed, iss, aud):
                full = verify_all(verifier, keys_dir, tokens, iss, aud)
                bare = verify_all(verifier, keys_dir, tokens, iss, aud,
                                  structural_checks=False)
                rejected = all(r != "ok" for r in
                               list(full.values()) + list(bare.values()))
                detail = "; ".join(bare.values())
                print("    %-4s %-30s %s" % ("ok" if rejected else "FAIL",
                                            desc, detail[:110]))
                if not rejected:
                    all_ok = False

    print("\nselftest %s" % ("PASSED" if all_ok else "FAILED"))
    return 0 if all_ok else 1


# --------------------------------------------------------------------------

def build_parser():
    parser = argparse.ArgumentParser(
        description="JWT interop helper for PyJWT / jwcrypto "
                    "(see the module docstring for the contract)")
    sub = parser.add_subparsers(dest="command", required=True)

    p_sign = sub.add_parser("sign", help="sign one token per algorithm")
    p_sign.add_argument("--lib", choices=LIBS, required=True)
    p_sign.add_argument("--keys", required=True, help="key folder")
    p_sign.add_argument("--out", required=True, help="output JSON file")
    p_sign.add_argument("--iss", default=DEFAULT_ISS)
    p_sign.add_argument("--aud", default=DEFAULT_AUD)
    p_sign.set_defaults(func=cmd_sign)

    p_verify = sub.add_parser("verify", help="verify tokens from a JSON file")
    p_verify.add_argument("--lib", choices=LIBS, required=True)
    p_verify.add_argument("--keys", required=True, help="key folder")
    p_verify.add_argument("--tokens", required=True,
                          help='JSON file {"ALG": "token", ...}')
    p_verify.add_argument("--iss", default=DEFAULT_ISS)
    p_verify.add_argument("--aud", default=DEFAULT_AUD)
    p_verify.set_defaults(func=cmd_verify)

    p_self = sub.add_parser("selftest",
                            help="generate keys, cross-sign and verify")
    p_self.add_argument("--keys", required=True,
                        help="key folder to (re)generate")
    p_self.set_defaults(func=cmd_selftest)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SetupError as exc:
        eprint("interop.py %s: error: %s" % (args.command, exc))
        return 2


if __name__ == "__main__":
    sys.exit(main())
