import JOSE

extension AuthFailure {
    /// The CLI's answer to a refused token: exit 1 with "rejected: reason: message".
    var cliExit: CLIExit { .rejected("rejected: \(reason.rawValue): \(message)") }
}

/// An error as the operator reads it on start or reload: a key problem as its own lines (each
/// names its file; the reason, always `key_config` or `crypto_failure` there, adds nothing),
/// anything else as it describes itself.
func operatorText(_ error: any Error) -> String {
    (error as? AuthFailure)?.message ?? "\(error)"
}
