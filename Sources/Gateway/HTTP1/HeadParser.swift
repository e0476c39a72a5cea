import NIOCore
import NIOEmbedded
import NIOHTTP1

/// NIOHTTP1's parser (llhttp) over one request head the byte scanner did not read, on a channel
/// of its own with no socket: the head as llhttp reads it, or its error in the words the
/// client is told. The scanner is strict and says nothing of why; llhttp knows the grammar's
/// every corner, so an unreadable head is answered with the precise reason.
enum HeadParser {
    enum Outcome {
        /// llhttp reads it (the scanner did not: the caller says why it is still refused).
        case head(HTTPRequestHead)
        /// llhttp refuses it: 400 (or 431), with the reason.
        case refused(ErrorResponse)
    }

    /// Parses `head`, a whole request head (up to and with its empty line).
    static func parse(_ head: ByteBuffer) -> Outcome {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        do {
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
            try channel.writeInbound(head)
            if case .head(let parsed)? = try channel.readInbound(as: HTTPServerRequestPart.self) { return .head(parsed) }
            return .refused(.badRequest("the request is not valid HTTP/1.1"))
        } catch let error as HTTPParserError {
            return .refused(answer(for: error))
        } catch {
            return .refused(.badRequest("the request is not valid HTTP/1.1"))
        }
    }

    /// What the client is told about bytes that are not HTTP/1.1 (the decoder's errors).
    static func answer(for error: HTTPParserError) -> ErrorResponse {
        let why: String
        switch error {
        case .headerOverflow:
            return .headersTooLarge("the request head exceeds 80 KiB")
        case .invalidMethod:
            // llhttp knows a fixed set of methods (case-sensitive): garbage and an unknown
            // extension method look the same to it.
            why = "the request line does not start with a method the gateway's HTTP/1.1 parser knows (methods are case-sensitive: GET, not get)"
        case .invalidURL, .invalidPath, .invalidQueryString, .invalidFragment, .invalidHost, .invalidPort:
            why = "the request target is not valid"
        case .invalidVersion: why = "the request line does not end in a valid HTTP version"
        case .invalidConstant: why = "the request line is not METHOD SP target SP HTTP/1.x"
        case .lfExpected: why = "a line of the request head does not end in CRLF"
        case .invalidHeaderToken: why = "a header field is not name: value, or holds a character HTTP does not allow in its name or value"
        case .invalidCharactersUsed: why = "the request head holds a character HTTP does not allow"
        case .invalidContentLength: why = "Content-Length is not a number"
        case .unexpectedContentLength: why = "Content-Length is given more than once or beside Transfer-Encoding"
        case .invalidChunkSize: why = "a chunk of the chunked request body has an invalid size line"
        case .trailingGarbage: why = "bytes follow the request that are not a request"
        default: why = "the request is not valid HTTP/1.1"
        }
        return .badRequest(why)
    }
}
