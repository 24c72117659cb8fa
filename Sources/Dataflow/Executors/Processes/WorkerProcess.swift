import Foundation
import ObjectStore

/// One worker process of a `ProcessExecutor`, seen from the parent. Requests and replies go
/// through a `_WorkerChannel` (shared memory, fd 6 in the worker): the attempt posts its request
/// and spins on the reply word, so that a quick task's round trip makes no system call and wakes
/// no thread. The streams are for the rest: fd 3 (a socket; rings for a worker that sleeps, and
/// requests too large for the slot) and fd 4 (a pipe; the worker's hello, rings for an attempt
/// that sleeps, large replies, and its end of file when the worker dies), read by a thread of
/// our own (a blocking read must not hold a thread of Swift's concurrency pool). The worker's
/// standard input is /dev/null; its standard output and error are ours between tasks and its
/// `_OutputCapture` (fd 5, a memfd we keep too) during one.
///
/// Ownership: this object owns the pid, both descriptors, the channel and the capture. The pid
/// is signalled only under `lock` while `death` is nil, and the reader thread reaps the process
/// under the same lock (it first waits for the end without reaping), so a signal never reaches a
/// reused pid. The request descriptor is written and closed only under `writeLock`, so a write
/// never meets a closed (or reused) descriptor number. The reply descriptor belongs to the
/// reader thread.
///
/// - Note: Thread-safe: `pending`, `arrived`, `inFlight`, `killReason`, `death`, `sequence`,
///   `lastStoreName`, `workerPace` and the channel's reply slot are guarded by `lock`; `requestsClosed` by `writeLock`.
///   One request at a time (the executor lends a worker to one attempt).
final class _WorkerProcess: @unchecked Sendable {  // mutable state is guarded by `lock`
    /// Why the executor killed a worker.
    enum KillReason: Sendable { case timeout, cancelled, brokenPipe }

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
    private let channel: _WorkerChannel
    /// The worker's output capture (our descriptor of its fd 5).
    private let captureFD: Int32
    private let lock = _AdaptiveLock()
    /// The suspended attempt waiting for the reply, if it stopped spinning.
    private var pending: CheckedContinuation<Reply, Never>?
    /// A reply that came over the reply pipe (a large one, or the worker's death) while the
    /// attempt was still spinning for it.
    private var arrived: Reply?
    /// A request is out and its reply not yet taken.
    private var inFlight = false
    /// How long the worker takes over its requests lately (what it reports on the channel): an
    /// attempt polls for the reply before it suspends only while that is within the spin.
    private var workerPace = _PacedSpin()
    private var killReason: KillReason?
    private var death: Death?
    /// The worker said hello (`_PoolHello`): it is serving. Only the reader thread touches it.
    private var greeted = false
    private var sequence = 0
    /// The store of the last output (the next one is most likely in it too).
    private var lastStoreName: String?
    /// Guards writing and closing `requestFD`.
    private let writeLock = NSLock()
    private var requestsClosed = false

    private init(pid: pid_t, requestFD: Int32, responseFD: Int32, channel: _WorkerChannel, captureFD: Int32) {
        self.pid = pid
        self.requestFD = requestFD
        self.responseFD = responseFD
        self.channel = channel
        self.captureFD = captureFD
    }

    deinit { _Sys.close(captureFD) }

    /// Whether the process is still running (as far as its reply pipe tells).
    var isAlive: Bool { lock.withLock { death == nil } }

    // MARK: Starting

    /// Starts `executable arguments...` with fd 3 (requests), fd 4 (replies), fd 5 (its output
    /// capture) and fd 6 (the channel) set up, and the thread that reads its reply pipe.
    /// - Throws: `.executor` naming the executable and the failing call.
    static func spawn(executable: String, arguments: [String]) throws(DataflowError) -> _WorkerProcess {
        func failure(_ call: String, _ error: _Errno) -> DataflowError {
            DataflowError(.executor, "cannot start worker '\(executable)': \(call) failed: \(error)")
        }
        // Requests go over a socket pair, so that writing to a worker that died fails with EPIPE
        // instead of raising SIGPIPE in this process (nothing here changes SIGPIPE's disposition).
        let request: (read: Int32, write: Int32)
        let response: (read: Int32, write: Int32)
        switch _Sys.socketPair() {
        case .success(let ends): request = ends
        case .failure(let error): throw failure("socketpair", error)
        }
        switch _Sys.pipe() {
        case .success(let ends): response = ends
        case .failure(let error):
            _Sys.close(request.read); _Sys.close(request.write)
            throw failure("pipe", error)
        }
        let channel: _WorkerChannel
        switch _WorkerChannel.create() {
        case .success(let made): channel = made
        case .failure(let error):
            _Sys.close(request.read); _Sys.close(request.write); _Sys.close(response.read); _Sys.close(response.write)
            throw failure("memfd_create (the worker's channel)", error)
        }
        let captureFD: Int32
        switch _Sys.makeMemoryFile(name: "dataflow-worker-output", bytes: 0) {
        case .success(let made): captureFD = made
        case .failure(let error):
            _Sys.close(request.read); _Sys.close(request.write); _Sys.close(response.read); _Sys.close(response.write)
            throw failure("memfd_create (the worker's output capture)", error)
        }
        // The child's ends move above 9 first, so that placing them at 3 and 4 cannot clobber
        // one with the other.
        let childRequest = try? _Sys.duplicate(request.read, atLeast: 10).get()
        let childResponse = try? _Sys.duplicate(response.write, atLeast: 10).get()
        _Sys.close(request.read)
        _Sys.close(response.write)
        defer {
            if let childRequest { _Sys.close(childRequest) }
            if let childResponse { _Sys.close(childResponse) }
        }
        guard let childRequest, let childResponse else {
            _Sys.close(request.write); _Sys.close(response.read); _Sys.close(captureFD)
            throw failure("fcntl(F_DUPFD_CLOEXEC)", .current)
        }
        // The worker's environment marks it as one (see `ProcessExecutor.workerEnvironmentVariable`);
        // it starts with no signal blocked or ignored (we ignore SIGPIPE; it must not).
        let marker = "\(ProcessExecutor.workerEnvironmentVariable)="
        let environment = ["\(marker)1"] + _Sys.environment().filter { !$0.hasPrefix(marker) }
        let pid: pid_t
        switch _Sys.spawn(
            executable: executable, arguments: [executable] + arguments, environment: environment,
            actions: [
                .duplicate(source: childRequest, target: 3), .duplicate(source: childResponse, target: 4),
                .duplicate(source: captureFD, target: _OutputCapture.workerDescriptor),
                .duplicate(source: channel.descriptor, target: _WorkerChannel.workerDescriptor),
                .open(path: "/dev/null", target: 0, flags: O_RDONLY, mode: 0),
            ],
            workingDirectory: nil, newSession: false)
        {
        case .success(let spawned): pid = spawned
        case .failure(let error):
            _Sys.close(request.write); _Sys.close(response.read); _Sys.close(captureFD)
            throw failure("posix_spawn", error)
        }
        let worker = _WorkerProcess(pid: pid, requestFD: request.write, responseFD: response.read, channel: channel, captureFD: captureFD)
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
        let (number, early, pace) = lock.withLock { () -> (Int, Reply?, _PacedSpin) in
            if let death { return (0, .died(death), workerPace) }
            sequence += 1
            inFlight = true
            arrived = nil
            killReason = nil
            return (sequence, nil, workerPace)
        }
        if let early { return early }
        let reply = await exchange(request, number: number, timeout: timeout, pace: pace)
        if case .result = reply { lock.withLock { workerPace.note(channel.replyWorkNanoseconds) } }
        return reply
    }

    /// Posts request `number` and waits for its reply: polling first (as `pace` says), then
    /// suspended.
    private func exchange(_ request: [UInt8], number: Int, timeout: Double?, pace: _PacedSpin) async -> Reply {
        await withTaskCancellationHandler {
            if !post(request, number: number) {
                // The stream broke: the worker is dying; its reader reports how it ended.
                kill(.brokenPipe, ifRequest: number)
            }
            if let timeout {
                DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { [self] in kill(.timeout, ifRequest: number) }
            }
            let posted = UInt32(truncatingIfNeeded: number)
            // The lock only once the word says so (a death, or a reply too large for the slot, is
            // taken after the poll).
            if let reply = pace.poll({ channel.hasReply(to: posted) ? lock.withLock { takeReply(number) } : nil }) { return reply }
            return await withCheckedContinuation { (continuation: CheckedContinuation<Reply, Never>) in
                let reply = lock.withLock { () -> Reply? in
                    if let reply = takeReply(number) { return reply }
                    pending = continuation
                    // Then look again: the worker rings only if it sees this word set, and it
                    // may have posted the reply just before (both stores come before both loads).
                    channel.setParentSleeping(true)
                    guard let reply = takeReply(number) else { return nil }
                    pending = nil
                    return reply
                }
                if let reply { continuation.resume(returning: reply) }
            }
        } onCancel: {
            kill(.cancelled, ifRequest: number)  // this request only: the worker may serve another by now
        }
    }

    /// Posts request `number` on the channel, ringing the worker if it sleeps, and sends it on
    /// the stream if it is too large for the slot. False if the stream is closed or broke.
    private func post(_ request: [UInt8], number: Int) -> Bool {
        writeLock.withLock {
            guard !requestsClosed else { return false }
            let inSlot = channel.postRequest(request, sequence: UInt32(truncatingIfNeeded: number), postedAt: DispatchTime.now().uptimeNanoseconds)
            if channel.workerIsSleeping, !_channelRing.withUnsafeBytes({ _Sys.sendAll(requestFD, $0) }) { return false }
            return inSlot || request.withUnsafeBytes { _Sys.sendAll(requestFD, $0) }
        }
    }

    /// The reply to request `number` if it is there: on the channel, or delivered by the reader
    /// thread (a large reply, or the worker's death). Under `lock`.
    /// A reply the worker posted stands even if it died right after.
    private func takeReply(_ number: Int) -> Reply? {
        guard inFlight, number == sequence else { return nil }
        if channel.hasReply(to: UInt32(truncatingIfNeeded: number)), let message = channel.takeReply() {
            guard let result = try? WorkerResult(wire: message, storeNameLikely: lastStoreName) else {
                // Not our protocol: stop the worker; its reader reports it dead.
                if death == nil { _Sys.kill(pid, SIGKILL) }
                return nil
            }
            arrived = nil
            inFlight = false
            if case .object(let descriptor)? = result.output { lastStoreName = descriptor.storeName }
            return .result(result)
        }
        guard let reply = arrived else { return nil }
        arrived = nil
        inFlight = false
        return reply
    }

    /// The reader thread got a ring: hands the channel's reply to the suspended attempt.
    private func deliverFromChannel() {
        let (continuation, reply) = lock.withLock { () -> (CheckedContinuation<Reply, Never>?, Reply?) in
            guard let waiting = pending, let reply = takeReply(sequence) else { return (nil, nil) }
            pending = nil
            return (waiting, reply)
        }
        if let continuation, let reply { continuation.resume(returning: reply) }
    }

    /// Hands a reply from the reply pipe to the attempt: resumes it if it is suspended, else
    /// leaves it for its spin.
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

    /// After the worker died in a task: appends what the task wrote that is not yet in its log
    /// file (the worker copies its capture there only when the task ends, or after a second).
    func salvageOutput(toLogAt logPath: String) {
        _OutputCapture.appendUncopied(capture: captureFD, channel: channel, toLogAt: logPath)
    }

    /// Kills the worker for `reason` if it is still running request `number` (any, if nil).
    /// Under `lock`, while it is not reaped: the pid cannot have been reused.
    func kill(_ reason: KillReason, ifRequest number: Int?) {
        lock.withLock {
            guard death == nil, inFlight, number == nil || number == sequence else { return }
            if reason != .brokenPipe { killReason = reason }
            _Sys.kill(pid, SIGKILL)
        }
    }

    /// Closes the request pipe: an idle worker exits when it reads the end of it.
    func closeRequests() {
        writeLock.withLock {
            guard !requestsClosed else { return }
            requestsClosed = true
            _Sys.close(requestFD)
        }
    }


    // MARK: Replies (the reader thread)

    private func readReplies() {
        var framer = _WireFramer()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        reading: while true {
            let count = (try? chunk.withUnsafeMutableBytes { _Sys.read(responseFD, into: $0) }.get()) ?? 0
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
                    if message.isEmpty {  // a ring: the reply is on the channel
                        deliverFromChannel()
                        continue
                    }
                    result = try WorkerResult(wire: message)
                } catch {
                    // Not our protocol: something else wrote to fd 4. Stop the worker; it is reported dead.
                    lock.withLock { if death == nil { _Sys.kill(pid, SIGKILL) } }
                    continue reading
                }
                deliver(.result(result))
            }
        }
        // End of the reply pipe: the worker exited or was killed. Wait for its end without
        // reaping, then reap it under the lock that `kill` takes (so no signal meets a reused pid).
        _Sys.waitUntilEnded(pid)
        let greeted = self.greeted
        let ended = lock.withLock { () -> Death in
            var ended: Death
            switch _Sys.reap(pid) {
            case .signalled(let signalNumber):
                ended = Death(status: "killed by signal \(signalNumber) (\(Self.signalName(signalNumber)))", signal: signalNumber)
            case .exited(let status):
                ended = Death(status: "exited with status \(status)", signal: nil, exitStatus: status)
            }
            if !greeted {
                ended.status += " before it served as a worker: the program never called `Workflow.runWorkerIfRequested(...)`."
                    + " Call it at the very start of main, after building the workflows and before parsing arguments or"
                    + " running anything (see the README, \"Worker programs\")"
            }
            ended.killReason = killReason
            death = ended
            return ended
        }
        _Sys.close(responseFD)
        closeRequests()
        deliverFromChannel()  // a reply posted just before it died stands
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
