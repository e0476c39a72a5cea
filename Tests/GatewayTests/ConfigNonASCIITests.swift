import Gateway
import Testing

/// A table header not starting with a key (`[é]`, `[(]`) made toml++ (inside TOMLKit) abort
/// the process with an assertion (found by fuzz-config: `[[\u{FFFD}route]]`, `[(((…`); `config
/// check` died, and so did a running gateway reloading such a file on SIGHUP. Such text is
/// refused with its line now, and text past ASCII in strings and comments still parses.
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

    /// Table headers that do not start with a key made toml++ assert too (`[(((…server]`).
    static let badHeaders = ["[(]\n", "[[(]]\n", "[ (]\n", "[.a]\n", "[=]\n", "[\t!]\n", "[\n", "[server]\nthreads = 2\n[[#]]\n", "["]

    @Test(arguments: badHeaders)
    func headersStartWithAKey(_ text: String) throws {
        do {
            _ = try GatewayConfig.parse(text)
            Issue.record("parsed: \(text.debugDescription)")
        } catch {
            let expected = text.split(separator: "\n", omittingEmptySubsequences: false).lastIndex { $0.hasPrefix("[") }.map { $0 + 1 }
            #expect(error.issues.first?.line == expected, "\(error)")
            #expect(error.description.contains("table header must start with a key"), "\(error)")
        }
    }

    /// A } where an array expects a value made toml++ assert (`a = [1, }]`).
    static let bracesInArrays = ["[server]\nlisten = [}]\n", "a = [1, }]\n", "a = [\n}\n]\n", "a = {b = [}]}\n", "a = [[}]]\n", "a = [{b = 1}, }]\n"]

    @Test(arguments: bracesInArrays)
    func aBraceInAnArrayIsRefused(_ text: String) throws {
        do {
            _ = try GatewayConfig.parse(text)
            Issue.record("parsed: \(text.debugDescription)")
        } catch {
            let expected = text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("}") }.map { $0 + 1 }
            #expect(error.issues.first?.line == expected, "\(error)")
            #expect(error.description.contains("a } inside an array"), "\(error)")
        }
    }

    /// Arrays whose lines start with `[` inside a value are not headers.
    @Test func arraysOverLinesAreNotHeaders() {
        let text = "[server]\nlisten = [\n  [1, 2],\n  [ {a = 1} ],\n  [(1)],\n]\n"
        do { _ = try GatewayConfig.parse(text) } catch {
            #expect(!error.description.contains("table header"), "\(error)")
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
