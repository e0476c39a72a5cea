import Gateway
import Testing

/// A table header starting with a character past ASCII made toml++ (inside TOMLKit) abort the
/// process with an assertion (found by fuzz-config: `[[\u{FFFD}route]]`); `config check` died,
/// and so did a running gateway reloading such a file on SIGHUP. Such text is refused with its
/// line now, and text past ASCII in strings and comments still parses.
@Suite struct ConfigNonASCIITests {
    static let refused = [
        "[é]\n",
        "[[é]]\n",
        "[[\u{FFFD}route]]\npath = \"/\"\n",
        "[server]\nlisten = \"127.0.0.1:8080\"\n[ é ]\n",
        "[a.é]\n",
        "é = 1\n",
        "[server]\nthreads = 2é\n",
        "[server]\n# a comment \"\naccess_log = \"off\" é\n",
    ]

    @Test(arguments: refused)
    func refusedWithItsLine(_ text: String) throws {
        do {
            _ = try GatewayConfig.parse(text)
            Issue.record("parsed: \(text.debugDescription)")
        } catch {
            let expected = text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains { !$0.isASCII } }.map { $0 + 1 }
            #expect(error.issues.count == 1)
            #expect(error.issues.first?.line == expected, "\(error)")
            #expect(error.description.contains("past ASCII"), "\(error)")
        }
    }

    /// Past ASCII only in strings (basic, literal, multi-line, with escapes and closing quotes
    /// in them) and comments: not refused for it (the config's own checks may refuse the rest).
    static let kept = [
        "# Ré-écrit: ☃\n[server]\naccess_log = \"off\"  # journal désactivé\n",
        "[server]\naccess_log = \"é \\\" still é\"\n",
        "[server]\naccess_log = 'literal ü \\'\n",
        "[server]\naccess_log = \"\"\"first é\nsecond \"ü\"\"\"\"\n",
        "[server]\naccess_log = \'\'\'first é\nsecond \'ü\'\'\'\'\n",
        "[server]\naccess_log = \"\"\"line \\\n  é\"\"\"\n",
        "[\"é\"]\n",
        "[server.\"é\"]\n",
    ]

    @Test(arguments: kept)
    func stringsAndCommentsMayHoldAnyCharacter(_ text: String) {
        do {
            _ = try GatewayConfig.parse(text)
        } catch {
            #expect(!error.description.contains("past ASCII"), "\(text.debugDescription): \(error)")
        }
    }

    @Test func aConfigWithUnicodeInItsStringsLoads() throws {
        let config = try GatewayConfig.parse(#"""
            # Ré-écrit: ☃
            [server]
            access_log = "off"  # journal désactivé
            [[route]]
            name = "cafe"
            path = "/cafe/"
            upstream = "http://127.0.0.1:9"  # ☕
            auth = "optional"
            """#)
        #expect(config.routes.map(\.name) == ["cafe"])
    }
}
