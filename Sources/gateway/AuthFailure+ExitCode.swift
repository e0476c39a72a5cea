import JOSE

extension AuthFailure {
    /// The CLI's answer to a refused token: exit 1 with "rejected: reason: message".
    var cliExit: CLIExit { .rejected("rejected: \(reason.rawValue): \(message)") }
}
