import Foundation
import ObjectStore

/// One worker process of a `ProcessExecutor`, seen from the parent: requests go to its fd 3 and
/// replies come back on its fd 4 (see `WireFormat.swift`), the replies and are read by a thread of our own (a blocking
/// read must not hold a thread of Swift's concurrency pool). Its standard input is /dev/null;
/// its standard output and error are ours between tasks and the attempt's log file during one.
///
/// - Note: Thread-safe: `pending`, `arrived`, `inFlight`, `killReason`, `death` and `sequence`
///   are guarded by `lock`.
///   One request at a time (the executor lends a worker to one attempt).
final class _WorkerProcess: @unchecked Sendable {  // mutable state is guarded by `lock`
    /// Why the executor killed a worker.
    enum KillReason: Sendable { case timeout, cancelled }

    /// How a worker ended.
    struct Death: Sendable {
        /// In words, e.g. "killed by signal 9 (SIGKILL)" or "exited with status 3".
        var status: String
        var signal: Int32?
        /// Its exit status, if it exited (rather than died of a signal).
        var exitStatus: Int32?
        /// Set when the executor killed it (then the signal is its own).
        var killReason: KillReason?
    }

    enum Reply: Sendable {
        case result(WorkerResult)
        case died(Death)
    }

    let pid: pid_t
    private let requestFD: Int32
    private let responseFD: Int32
    private let lock = _AdaptiveLock()
    /// The suspended attempt waiting for the reply, if it stopped spinning.
    private var pending: CheckedContinuation<Reply, Never>?
    /// A reply that arrived while the attempt was still spinning for it.
    private var arrived: Reply?
    /// A request is out and its reply not yet taken.
    private var inFlight = false
    /// How long an attempt polls for its reply before it suspends: a trivial task's reply comes
    /// back within this, and taking it without suspending saves a thread wake-up per hop.
    private static let spinNanoseconds: UInt64 = 200_000
    private var killReason: KillReason?
    private var death: Death?
    /// The worker said hello (`_PoolHello`): it is serving. Only the reader thread touches it.
    private var greeted = false
    private var sequence = 0
    private var requestsClosed = false

    private init(pid: pid_t, requestFD: Int32, responseFD: Int32) {
        self.pid = pid
        self.requestFD = requestFD
        self.responseFD = responseFD
    }

    /// Whether the process is still running (as far as its reply pipe tells).
    var isAlive: Bool { lock.withLock { death == nil } }

    // MARK: Starting

    /// Starts `executable arguments...` with fd 3 (requests) and fd 4 (replies) set up, and the
    /// thread that reads its replies.
    /// - Throws: `.executor` naming the executable and the failing call.
    static func spawn(executable: String, arguments: [String]) throws(DataflowError) -> _WorkerProcess {
        func failure(_ call: String, _ code: Int32) -> DataflowError {
            DataflowError(.executor, "cannot start worker '\(executable)': \(call) failed: \(String(cString: strerror(code)))")
        }
        var request: [Int32] = [-1, -1]
        var response: [Int32] = [-1, -1]
        guard pipe(&request) == 0 else { throw failure("pipe", errno) }
        guard pipe(&response) == 0 else {
            let code = errno
            close(request[0]); close(request[1])
            throw failure("pipe", code)
        }
        // Our ends must not leak into other children (pipe2 with O_CLOEXEC is not exported).
        for fd in request + response { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        // The child's ends move above 9 first, so that placing them at 3 and 4 cannot clobber
        // one with the other.
        let childRequest = fcntl(request[0], F_DUPFD_CLOEXEC, 10)
        let childResponse = fcntl(response[1], F_DUPFD_CLOEXEC, 10)
        close(request[0])
        close(response[1])
        defer {
            close(childRequest)
            close(childResponse)
        }
        guard childRequest >= 0, childResponse >= 0 else {
            let code = errno
            close(request[1]); close(response[0])
            throw failure("fcntl(F_DUPFD_CLOEXEC)", code)
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, childRequest, 3)
        posix_spawn_file_actions_adddup2(&actions, childResponse, 4)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // We ignore SIGPIPE; the worker gets the default back (an ignored signal survives exec).
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        // The worker's environment marks it as one (see `ProcessExecutor.workerEnvironmentVariable`).
        var environment: [UnsafeMutablePointer<CChar>?] = [strdup("\(ProcessExecutor.workerEnvironmentVariable)=1")]
        var entry = environ
        while let variable = entry.pointee {
            if !String(cString: variable).hasPrefix("\(ProcessExecutor.workerEnvironmentVariable)=") { environment.append(strdup(variable)) }
            entry += 1
        }
        environment.append(nil)
        defer { for variable in environment { free(variable) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, environment)
        guard status == 0 else {
            close(request[1]); close(response[0])
            throw failure("posix_spawn", status)
        }
        let worker = _WorkerProcess(pid: pid, requestFD: request[1], responseFD: response[0])
        let reader = Thread { worker.readReplies() }
        reader.name = "dataflow-worker-\(pid)"
        reader.start()
        return worker
    }

    // MARK: Requests

    /// Sends one request message and waits for the reply, or for the worker's death. After
    /// `timeout` seconds the worker is killed (`Death.killReason == .timeout`); cancelling the
    /// calling task kills it too (`.cancelled`).
    func run(_ request: [UInt8], timeout: Double?) async -> Reply {
        let (number, early) = lock.withLock { () -> (Int, Reply?) in
            if let death { return (0, .died(death)) }
            sequence += 1
            inFlight = true
            arrived = nil
            killReason = nil
            return (sequence, nil)
        }
        if let early { return early }
        return await withTaskCancellationHandler {
            if !request.withUnsafeBytes({ _writeAll(requestFD, $0) }) {
                // The pipe broke: the worker is dying; its reader reports how it ended.
                Glibc.kill(pid, SIGKILL)
            }
            if let timeout {
                DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { [self] in kill(.timeout, ifRequest: number) }
            }
            let spinUntil = DispatchTime.now().uptimeNanoseconds + Self.spinNanoseconds
            repeat {
                if let reply = takeArrived() { return reply }
                sched_yield()
            } while DispatchTime.now().uptimeNanoseconds < spinUntil
            return await withCheckedContinuation { (continuation: CheckedContinuation<Reply, Never>) in
                let reply = lock.withLock { () -> Reply? in
                    if let reply = arrived {
                        arrived = nil
                        inFlight = false
                        return reply
                    }
                    pending = continuation
                    return nil
                }
                if let reply { continuation.resume(returning: reply) }
            }
        } onCancel: {
            kill(.cancelled, ifRequest: nil)
        }
    }

    /// The reply, if it arrived while the attempt spun.
    private func takeArrived() -> Reply? {
        lock.withLock {
            guard let reply = arrived else { return nil }
            arrived = nil
            inFlight = false
            return reply
        }
    }

    /// Hands a reply to the attempt: resumes it if it is suspended, else leaves it for its spin.
    private func deliver(_ reply: Reply) {
        let continuation = lock.withLock { () -> CheckedContinuation<Reply, Never>? in
            guard inFlight else { return nil }  // nobody asked (a stray reply): dropped
            guard let waiting = pending else {
                arrived = reply
                return nil
            }
            pending = nil
            inFlight = false
            return waiting
        }
        continuation?.resume(returning: reply)
    }

    /// Kills the worker for `reason` if it is still running request `number` (any, if nil).
    func kill(_ reason: KillReason, ifRequest number: Int?) {
        let shouldKill = lock.withLock { () -> Bool in
            guard death == nil, inFlight, number == nil || number == sequence else { return false }
            killReason = reason
            return true
        }
        if shouldKill { Glibc.kill(pid, SIGKILL) }
    }

    /// Closes the request pipe: an idle worker exits when it reads the end of it.
    func closeRequests() {
        let close = lock.withLock { () -> Bool in
            defer { requestsClosed = true }
            return !requestsClosed
        }
        if close { Glibc.close(requestFD) }
    }


    // MARK: Replies (the reader thread)

    private func readReplies() {
        var framer = _WireFramer()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        reading: while true {
            let count = chunk.withUnsafeMutableBytes { read(responseFD, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            framer.append(chunk[0..<count])
            while true {
                let result: WorkerResult
                do {
                    guard let message = try framer.next() else { break }
                    if !greeted {
                        // The first message must be the worker's hello.
                        guard message == _PoolHello.message else { throw _WireError(description: "no hello") }
                        greeted = true
                        continue
                    }
                    result = try WorkerResult(wire: message)
                } catch {
                    // Not our protocol: something else wrote to fd 4. Stop the worker; it is reported dead.
                    Glibc.kill(pid, SIGKILL)
                    continue reading
                }
                deliver(.result(result))
            }
        }
        // End of the reply pipe: the worker exited or was killed. Reap it.
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signalNumber = status & 0x7f
        var ended = signalNumber != 0
            ? Death(status: "killed by signal \(signalNumber) (\(Self.signalName(signalNumber)))", signal: signalNumber)
            : Death(status: "exited with status \((status >> 8) & 0xff)", signal: nil, exitStatus: (status >> 8) & 0xff)
        if !greeted {
            ended.status += " before it served as a worker: the program never called `Workflow.runWorkerIfRequested(...)`."
                + " Call it at the very start of main, after building the workflows and before parsing arguments or"
                + " running anything (see the README, \"Worker programs\")"
        }
        lock.withLock {
            ended.killReason = killReason
            death = ended
        }
        close(responseFD)
        closeRequests()
        deliver(.died(ended))
    }

    static func signalName(_ number: Int32) -> String {
        switch number {
        case SIGKILL: "SIGKILL"
        case SIGTERM: "SIGTERM"
        case SIGSEGV: "SIGSEGV"
        case SIGABRT: "SIGABRT"
        case SIGILL: "SIGILL"
        case SIGTRAP: "SIGTRAP"
        case SIGBUS: "SIGBUS"
        case SIGINT: "SIGINT"
        default: "signal \(number)"
        }
    }
}
