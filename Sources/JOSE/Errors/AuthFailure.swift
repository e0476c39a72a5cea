/// Why a token, a request or a session was refused, or why JOSE could not do what it was
/// asked (load a key, parse JSON, sign): one reason from a fixed vocabulary and a human
/// message. It is the only error JOSE throws; its own lower-level failures (OpenSSL's error
/// queue, jansson's parse errors) end up in the message.
///
/// The reason is what clients, metrics and exit codes see; the message is for people and logs.
/// Edges (HTTP, WebSocket, CLI) map the reason to their own codes and never show more than the
/// reason and the message.
public struct AuthFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// The reasons, spelled as they appear on the wire (`error_description`, logs, metrics).
    public enum Reason: String, Sendable, CaseIterable {
        /// No token was presented where one is required.
        case missingToken = "missing_token"
        /// Not a compact JWS: wrong number of parts, bad base64url, bad JSON, wrong types. Also
        /// any JSON that does not parse (``JSONDocument``, ``JSONValue``), with jansson's
        /// explanation and the byte where it stopped.
        case malformed
        /// Larger than the configured maximum token size.
        case tokenTooLarge = "token_too_large"
        /// The header names an algorithm this gateway does not accept (`none` included).
        case unsupportedAlg = "unsupported_alg"
        /// A critical header extension (`crit`) this gateway does not understand.
        case unsupportedCritical = "unsupported_crit"
        /// No key in the ring has the token's `kid`, or no key fits its algorithm.
        case unknownKid = "unknown_kid"
        /// A key with that `kid` exists but may not verify this algorithm.
        case keyAlgMismatch = "key_alg_mismatch"
        /// The signature does not verify.
        case badSignature = "bad_signature"
        /// `exp` is in the past (beyond the leeway).
        case expired
        /// `nbf` is in the future, or `iat` is in the future (beyond the leeway).
        case notYetValid = "not_yet_valid"
        /// `iss` is not the expected issuer.
        case wrongIssuer = "wrong_issuer"
        /// No `aud` value is an accepted audience.
        case wrongAudience = "wrong_audience"
        /// A required claim is absent.
        case missingClaim = "missing_claim"
        /// A claim is present but of the wrong type or shape.
        case invalidClaim = "invalid_claim"
        /// The token is valid but its `session_id` names no runtime session.
        case sessionNotFound = "session_not_found"
        /// The session was revoked (logout, refresh-token reuse, admin).
        case sessionRevoked = "session_revoked"
        /// Authenticated, but the route's policy does not allow this identity.
        case forbidden

        // Not a token's fault: the gateway's own keys and crypto. Never a verification answer.

        /// The gateway's keys: a key file, JWK, JWKS or secret that cannot be loaded (each line
        /// of the message names its source), a key folder that cannot be read or written, a
        /// key that may not sign what was asked, or no key in the ring that can.
        case keyConfig = "key_config"
        /// libcrypto failed where it should not (signing, key generation, password hashing);
        /// the message carries OpenSSL's error queue.
        case cryptoFailure = "crypto_failure"
    }

    public let reason: Reason
    public let message: String

    public init(_ reason: Reason, _ message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { "\(reason.rawValue): \(message)" }
}
