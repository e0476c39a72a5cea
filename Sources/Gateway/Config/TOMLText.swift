/// A look at config text before TOMLKit parses it.
///
/// toml++ (inside TOMLKit) stops the process with an assertion on a table header that starts
/// with a character past ASCII (`[é]`, `[[é]]`: "Assertion `is_bare_key_character(*cp) ||
/// is_string_delimiter(*cp)' failed"), so `config check` aborted, and so did a running gateway
/// on SIGHUP with such a file, instead of refusing it. In TOML 1.0 such a character can only
/// stand in a quoted string or a comment (bare keys, table names, numbers, dates and booleans
/// are ASCII), so text with one anywhere else is refused here, before toml++ sees it.
enum TOMLText {
    /// The line (from 1) of the first byte past ASCII outside a string or a comment, if any.
    static func nonASCIIOutsideStrings(_ text: String) -> Int? {
        let bytes = Array(text.utf8)
        let n = bytes.count
        let newline = UInt8(ascii: "\n"), hash = UInt8(ascii: "#"), backslash = UInt8(ascii: "\\")
        let doubleQuote = UInt8(ascii: "\""), singleQuote = UInt8(ascii: "'")
        func at(_ k: Int) -> UInt8? { k < n ? bytes[k] : nil }
        var i = 0, line = 1
        while i < n {
            let b = bytes[i]
            if b == newline {
                line += 1
                i += 1
            } else if b == hash {
                while i < n, bytes[i] != newline { i += 1 }
            } else if b == doubleQuote || b == singleQuote {
                let quote = b
                let multiline = at(i + 1) == quote && at(i + 2) == quote
                i += multiline ? 3 : 1
                while i < n {
                    let c = bytes[i]
                    if c == newline {
                        line += 1
                        i += 1
                        if !multiline { break }  // not closed on its line: toml++ says so
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
            } else {
                if b >= 0x80 { return line }
                i += 1
            }
        }
        return nil
    }
}
