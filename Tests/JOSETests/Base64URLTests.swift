import JOSE
import Testing

@Suite struct Base64URLTests {
    @Test(arguments: [
        ([], ""), ([0x66], "Zg"), ([0x66, 0x6f], "Zm8"), ([0x66, 0x6f, 0x6f], "Zm9v"),
        ([0xfb, 0xff, 0xbf], "-_-_"), ([0x00, 0x00, 0x00, 0x00], "AAAAAA"),
    ] as [([UInt8], String)])
    func roundTrip(bytes: [UInt8], text: String) {
        #expect(Base64URL.encode(bytes) == text)
        #expect(Base64URL.decode(text) == bytes)
    }

    @Test(arguments: [
        "Zg==",        // padding
        "Zm9v=",       // padding
        "+/+/",        // standard alphabet
        "Zm9 v",       // space
        "Zm9v\n",      // newline
        "Z",           // 4n+1 length
        "Zh",          // non-zero unused bits (0x66 is Zg)
        "Zm\u{0}9",    // NUL
        "Zm9vé",       // non-ASCII
    ])
    func rejects(text: String) {
        #expect(Base64URL.decode(text) == nil, "\(text.debugDescription) must be refused")
    }

    @Test func rejectsNonCanonicalTrailingBits() {
        #expect(Base64URL.decode("Zm8") == [0x66, 0x6f])
        #expect(Base64URL.decode("Zm9") == nil)
    }
}
