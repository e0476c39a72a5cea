import ArgumentParser
import Dispatch
import Foundation
import Gateway
import JOSE
import Logging

/// `gateway serve`: the edge gateway. SIGHUP reloads config and keys (a bad new config is
/// refused and the old one keeps serving); SIGTERM and SIGINT drain, then exit.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the gateway: route, verify, proxy. SIGHUP reloads; SIGTERM drains and exits."
    )

    @Option(help: "Config file.") var config: String = "gateway.conf"
    @Option(help: "Event-loop threads (default: [server] threads, else one per core).") var threads: Int?
    @Option(help: "Override [server] listen, e.g. 127.0.0.1:0.") var listen: String?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let listen, ServerConfig.parseListen(listen) == nil { throw ValidationError("--listen expects HOST:PORT") }
    }

    func run() throws {
        var settings: GatewayConfig
        do { settings = try GatewayConfig.load(path: config) } catch { throw CLIExit.usage("config is invalid:\n\(error)") }
        if let listen, let (host, port) = ServerConfig.parseListen(listen) {
            settings.server.host = host
            settings.server.port = port
        }
        let problems = settings.problemsOnThisMachine()
        if !problems.isEmpty { throw CLIExit.usage("config cannot be served here:\n" + problems.map { "  \($0)" }.joined(separator: "\n")) }
        let sink = LogSink(fd: STDERR_FILENO)
        let logger = Logger(label: "gateway") { JSONLineLogHandler(label: $0, sink: sink) }
        do {
            if let made = try KeyFolder.ensureSigningKey(in: settings.auth.keys) {
                logger.notice("no signing key: made a development ES256 key", metadata: ["kid": "\(made.kid)", "private": "\(made.privatePath)"])
            }
        } catch {
            throw CLIExit.usage(error.message)
        }
        let configPath = config
        let started = DispatchSemaphore(value: 0)
        let outcome = StartOutcome()
        let routeCount = settings.routes.count
        let frozen = settings
        Task { @Sendable in
            do {
                let server = try await GatewayServer.make(config: frozen, threads: threads, logger: logger)
                outcome.server = server
                let (host, port) = try await server.start()
                logger.info("listening", metadata: ["address": "\(host):\(port)", "routes": "\(routeCount)", "threads": "\(server.threadCount)"])
                // A line scripts and tests can wait for.
                FileHandle.standardOutput.write(Data("gateway listening on \(host):\(port)\n".utf8))
            } catch {
                outcome.error = error
            }
            started.signal()
        }
        started.wait()
        if let startError = outcome.error { throw CLIExit.usage("cannot start on \(settings.server.host):\(settings.server.port): \(operatorText(startError))") }
        guard let server = outcome.server else { throw CLIExit.usage("cannot start") }

        let signals = SignalHandlers()
        signals.on(SIGHUP) {
            do {
                try server.reload(configPath: configPath)
            } catch {
                logger.error("reload refused; the running config and keys keep serving", metadata: ["error": "\(operatorText(error))"])
            }
        }
        let stop: @Sendable () -> Void = {
            let drainTimeout = server.drainTimeout  // the config in service: a reload may have changed it
            logger.info("draining", metadata: ["timeout_s": "\(drainTimeout)"])
            Task {
                await server.drain(timeout: drainTimeout)
                logger.info("drained; exiting")
                await server.shutdown()
                Foundation.exit(0)
            }
        }
        signals.on(SIGTERM, stop)
        signals.on(SIGINT, stop)
        dispatchMain()
    }
}

/// Signal handling through Dispatch sources (the default action is ignored so the source
/// sees the signal).
final class SignalHandlers: @unchecked Sendable {  // sources are only added at startup
    private var sources: [any DispatchSourceSignal] = []

    func on(_ signalNumber: Int32, _ handler: @escaping @Sendable () -> Void) {
        signal(signalNumber, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
        source.setEventHandler(handler: handler)
        source.resume()
        sources.append(source)
    }
}

/// Carries a start failure out of the start task; written before the semaphore is signalled,
/// read after it is waited on.
final class StartOutcome: @unchecked Sendable {
    var error: (any Error)?
    var server: GatewayServer?
}
