import Foundation

/// Where a pool worker's standard output and error go: an anonymous file in memory (a memfd the
/// parent made and gave the worker as fd 5). When a task ends, what it wrote, if anything, is
/// appended to the attempt's log file (`logs/<task>.<attempt>.log`) and the capture emptied.
/// Creating and removing a log file for every task cost a trivial task about 100 µs on ext4
/// (allocating an inode after many deletions), and switching the descriptors around each task a
/// few µs more; most tasks write nothing, and then a task costs this one `fstat`.
///
/// A task still running after `liveAfterSeconds` gets its log file then: what it wrote so far is
/// copied there, and its output goes straight to the file until it ends, so that a long task's
/// log can be followed while it runs. The channel's `captureCopied` word says how much of the
/// capture is in the file; when a worker dies in a task, the parent appends the rest
/// (`appendUncopied(capture:channel:toLogAt:)`), so a crash's last words are kept. What the
/// worker writes between tasks (a task's stray thread) goes to the next task's log.
///
/// - Note: Thread-safe: `begin` and `end` run on the worker's serving loop, the switch to the
///   file on a watcher thread; the state they share is guarded by `lock`. One per worker
///   process (its watcher thread lives as long as the process).
final class _OutputCapture: @unchecked Sendable {  // `task`, `taskBegan`, `logPath`, `logFD` are guarded by `lock`
    /// The capture's descriptor in the worker.
    static let workerDescriptor: Int32 = 5
    /// How long a task's output stays in memory before it goes to its log file as it is written
    /// (checked every `watchIntervalSeconds`, so up to that much later).
    static let liveAfterSeconds = 1.0
    static let watchIntervalSeconds = 0.25

    private let channel: _WorkerChannel
    private let lock = NSLock()
    /// Whether a task is running.
    private var task = false
    /// When the current task began (`DispatchTime` nanoseconds).
    private var taskBegan: UInt64 = 0
    /// The running task's log file, made into a path only when it is needed (most tasks write
    /// nothing).
    private var log: (runDirectory: String, task: String, attempt: Int)?
    /// The log file once the task's output goes straight to it; -1 before.
    private var logFD: Int32 = -1

    /// The worker's side: fd 5, if the parent gave one. From now on the worker's standard output
    /// and error go to it.
    init?(channel: _WorkerChannel) {
        guard _Sys.fileSize(Self.workerDescriptor) != nil else { return nil }
        _Sys.setCloseOnExec(Self.workerDescriptor)
        self.channel = channel
        _Sys.flushStandardStreams()
        _Sys.redirect(Self.workerDescriptor, to: STDOUT_FILENO)
        _Sys.redirect(Self.workerDescriptor, to: STDERR_FILENO)
        // A thread of its own looks at the running task now and then (a timer armed per task
        // cost a trivial task a wake-up of Dispatch's manager thread).
        let watcher = Thread { [self] in
            while true {
                _Sys.sleep(seconds: Self.watchIntervalSeconds)
                goLiveIfLong()
            }
        }
        watcher.name = "dataflow-output-capture"
        watcher.start()
    }

    /// Attempt `attempt` of task `task` of the run in `runDirectory` begins (no system call).
    func begin(runDirectory: String, task name: String, attempt: Int) {
        let now = DispatchTime.now().uptimeNanoseconds
        lock.withLock {
            task = true
            taskBegan = now
            log = (runDirectory, name, attempt)
        }
    }

    /// The running task's log file. Under `lock`.
    private var logPath: String? {
        log.map { RunDirectory(path: $0.runDirectory).attemptLogPath(task: $0.task, attempt: $0.attempt) }
    }

    /// The task ended: appends what it wrote (if anything) to its log file and empties the
    /// capture. A log file that stayed empty is removed. Returns whether the log file has what
    /// the task wrote (false if it wrote nothing).
    @discardableResult
    func end() -> Bool {
        _Sys.flushStandardStreams()  // every C stream (Swift's print goes through stdout's buffer)
        return lock.withLock { () -> Bool in
            task = false
            defer { log = nil }
            if logFD < 0, log != nil, (_Sys.fileSize(Self.workerDescriptor) ?? 0) == 0 { return false }  // the common case: nothing written
            guard let logPath else { return false }
            let captured: Int
            let logHasOutput: Bool
            if logFD >= 0 {
                // Live: back to the capture; only what was written during the switch is left.
                _Sys.redirect(Self.workerDescriptor, to: STDOUT_FILENO)
                _Sys.redirect(Self.workerDescriptor, to: STDERR_FILENO)
                channel.captureCopied = Self.copy(capture: Self.workerDescriptor, from: channel.captureCopied, to: logFD)
                captured = channel.captureCopied
                logHasOutput = (_Sys.fileSize(logFD) ?? 0) > 0
                if !logHasOutput { _Sys.unlink(logPath) }
                _Sys.close(logFD)
                logFD = -1
            } else {
                captured = Self.appendUncopied(capture: Self.workerDescriptor, channel: channel, toLogAt: logPath)
                logHasOutput = channel.captureCopied > 0
            }
            if captured > 0 {
                // Emptied before the copied count is reset: a parent that reads them in between
                // (the worker died) finds nothing to copy.
                _Sys.truncateToEmpty(Self.workerDescriptor)
                channel.captureCopied = 0
            }
            return logHasOutput
        }
    }

    /// If the task has run for `liveAfterSeconds`: its log file is made, what it wrote so far is
    /// copied there, and its output goes to the file until it ends.
    private func goLiveIfLong() {
        let now = DispatchTime.now().uptimeNanoseconds
        lock.withLock {
            guard task, logFD < 0, now >= taskBegan + UInt64(Self.liveAfterSeconds * 1e9), let logPath,
                let fd = Self.openLog(logPath)
            else { return }
            _Sys.flushStandardStreams()
            channel.captureCopied = Self.copy(capture: Self.workerDescriptor, from: channel.captureCopied, to: fd)
            _Sys.redirect(fd, to: STDOUT_FILENO)
            _Sys.redirect(fd, to: STDERR_FILENO)
            // What was written between the copy and the switch.
            channel.captureCopied = Self.copy(capture: Self.workerDescriptor, from: channel.captureCopied, to: fd)
            logFD = fd
        }
    }

    // MARK: Copying (both sides)

    /// Appends the bytes of `capture` that the channel does not count as copied to the log file
    /// at `logPath` (made, with its directory, only if there are any), and counts them.
    /// Returns the capture's size.
    @discardableResult
    static func appendUncopied(capture: Int32, channel: _WorkerChannel, toLogAt logPath: String) -> Int {
        let copied = channel.captureCopied
        let size = _Sys.fileSize(capture) ?? 0
        guard size > copied, let fd = openLog(logPath) else { return size }
        channel.captureCopied = copy(capture: capture, from: copied, to: fd)
        _Sys.close(fd)
        return size
    }

    /// Opens (appending; making it and its directory if needed) the log file at `path`.
    private static func openLog(_ path: String) -> Int32? {
        if case .success(let fd) = _Sys.openForAppending(path) { return fd }
        let directory = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return try? _Sys.openForAppending(path).get()
    }

    /// Copies `capture`'s bytes from `offset` to its end onto `fd`; returns the offset reached.
    private static func copy(capture: Int32, from offset: Int, to fd: Int32) -> Int {
        var offset = offset
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { (try? _Sys.read(capture, into: $0, at: offset).get()) ?? 0 }
            guard count > 0, chunk.withUnsafeBytes({ _Sys.writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[0..<count])) }) else { return offset }
            offset += count
        }
    }
}
