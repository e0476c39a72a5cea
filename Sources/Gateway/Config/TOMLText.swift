/// A look at config text before TOMLKit parses it.
///
/// toml++ (inside TOMLKit) stops the process with an assertion ("Assertion
/// `is_bare_key_character(*cp) || is_string_delimiter(*cp)' failed") on a table header that does
/// not start with a key: `[é]`, `[[é]]`, `[(]`, `[.a]`, `[=]`, `[` at a line's end. So `config
/// check` aborted, and so did a running gateway on SIGHUP with such a file, instead of refusing
/// it (found by fuzz-config). It asserts as well on a } where an array expects a value
/// (`a = [1, }]`). Such text is refused here, before toml++ sees it, and so is any
/// character past ASCII outside a quoted string or a comment: in TOML 1.0 it can stand nowhere
/// else (bare keys, table names, numbers, dates and booleans are ASCII).
enum TOMLText {
    /// The first line (from 1) that toml++ must not see, and why.
    static func problem(_ text: String) -> (line: Int, message: String)? {
        let bytes = Array(text.utf8)
        let n = bytes.count
        let newline = UInt8(ascii: "\n"), hash = UInt8(ascii: "#"), backslash = UInt8(ascii: "\\")
        let doubleQuote = UInt8(ascii: "\""), singleQuote = UInt8(ascii: "'")
        let open = UInt8(ascii: "["), close = UInt8(ascii: "]"), brace = UInt8(ascii: "{"), closeBrace = UInt8(ascii: "}")
        let equals = UInt8(ascii: "="), space = UInt8(ascii: " "), tab = UInt8(ascii: "\t"), cr = UInt8(ascii: "\r")
        func at(_ k: Int) -> UInt8? { k < n ? bytes[k] : nil }
        func startsKey(_ b: UInt8?) -> Bool {
            guard let b else { return false }
            return (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == UInt8(ascii: "_")
                || b == UInt8(ascii: "-") || b == doubleQuote || b == singleQuote || b == close
        }
        var i = 0, line = 1
        // Outside strings: whether the line holds only blanks so far, whether a value is being
        // read (after `=`, until the line ends outside brackets), and the value's bracket depth.
        var blankSoFar = true, inValue = false, brackets: [UInt8] = []
        while i < n {
            let b = bytes[i]
            if b == newline {
                line += 1
                i += 1
                blankSoFar = true
                if brackets.isEmpty { inValue = false }
            } else if b == hash {
                while i < n, bytes[i] != newline { i += 1 }
            } else if b == doubleQuote || b == singleQuote {
                blankSoFar = false
                let quote = b
                let multiline = at(i + 1) == quote && at(i + 2) == quote
                i += multiline ? 3 : 1
                while i < n {
                    let c = bytes[i]
                    if c == newline {
                        if !multiline { break }  // not closed on its line: toml++ says so
                        line += 1
                        i += 1
                    } else if quote == doubleQuote, c == backslash {
                        if at(i + 1) == newline { line += 1 }
                        i += 2
                    } else if c == quote {
                        if !multiline {
                            i += 1
                            break
                        }
                        if at(i + 1) == quote, at(i + 2) == quote {
                            i += 3
                            // Up to two more quotes are the string's last characters.
                            var extra = 0
                            while extra < 2, at(i) == quote { i += 1; extra += 1 }
                            break
                        }
                        i += 1
                    } else {
                        i += 1
                    }
                }
            } else if b >= 0x80 {
                return (line, "TOML syntax: a character past ASCII outside a quoted string or a comment (bare keys and table names are ASCII: quote them)")
            } else {
                if b == open, blankSoFar, !inValue {
                    // A table header: a key must follow `[` or `[[` (and blanks).
                    var k = i + 1
                    if at(k) == open { k += 1 }
                    while at(k) == space || at(k) == tab { k += 1 }
                    if !startsKey(at(k)), (at(k) ?? 0) < 0x80 {  // past ASCII: said below
                        return (line, "TOML syntax: a table header must start with a key (letters, digits, _ and -, or a quoted key)")
                    }
                } else if inValue, b == open || b == brace {
                    brackets.append(b)
                } else if inValue, b == close || b == closeBrace, let innermost = brackets.last {
                    // toml++ asserts on a } where an array expects a value ([}], [1, }]).
                    if b == closeBrace, innermost == open {
                        return (line, "TOML syntax: a } inside an array (a value or ] was expected)")
                    }
                    brackets.removeLast()
                } else if b == equals {
                    inValue = true
                }
                if b != space, b != tab, b != cr { blankSoFar = false }
                i += 1
            }
        }
        return nil
    }
}
