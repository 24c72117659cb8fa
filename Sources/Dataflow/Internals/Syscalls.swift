import CDataflowSystem
#if canImport(Glibc)
import Glibc
#endif

// Every system call of the Dataflow module goes through this file: processes (spawn, wait,
// signal), pipes and descriptors. Each wrapper reads `errno` at once and retries EINTR where the
// call may be interrupted; the callers get a `Result<_, _Errno>` or a plain value.

/// An `errno` value with its name and message.
struct _Errno: Error, Equatable, CustomStringConvertible {
    let code: Int32
    var description: String { "\(String(cString: strerror(code))) (errno \(code))" }
    static var current: _Errno { _Errno(code: errno) }
}

enum _Sys {
    // MARK: Descriptors

    /// A pipe whose two ends are close-on-exec: (read end, write end).
    static func pipe() -> Result<(read: Int32, write: Int32), _Errno> {
        var fds: [Int32] = [-1, -1]
        guard Glibc.pipe(&fds) == 0 else { return .failure(.current) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return .success((fds[0], fds[1]))
    }

    /// A connected pair of Unix stream sockets, both close-on-exec: a channel like a pipe (one
    /// direction used), whose writer can be told not to raise SIGPIPE (`sendAll`).
    static func socketPair() -> Result<(read: Int32, write: Int32), _Errno> {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else { return .failure(.current) }
        shutdown(fds[0], Int32(SHUT_WR))
        shutdown(fds[1], Int32(SHUT_RD))
        return .success((fds[0], fds[1]))
    }

    /// Sends all of `bytes` on socket `fd` without raising SIGPIPE when the peer is gone
    /// (`MSG_NOSIGNAL`), retrying EINTR and short sends. False if a send fails.
    static func sendAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if sent < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += sent
        }
        return true
    }

    /// A close-on-exec duplicate of `fd` numbered at least `minimum`.
    static func duplicate(_ fd: Int32, atLeast minimum: Int32) -> Result<Int32, _Errno> {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, minimum)
        return copy >= 0 ? .success(copy) : .failure(.current)
    }

    /// A duplicate of `fd` (for saving standard output around a redirection).
    static func duplicate(_ fd: Int32) -> Int32 { dup(fd) }

    /// Marks `fd` close-on-exec.
    static func setCloseOnExec(_ fd: Int32) { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }

    /// A close-on-exec duplicate of `fd`.
    static func duplicateCloseOnExec(_ fd: Int32) -> Int32 { fcntl(fd, F_DUPFD_CLOEXEC, 0) }

    /// Makes `target` refer to what `fd` refers to.
    static func redirect(_ fd: Int32, to target: Int32) {
        while dup2(fd, target) < 0 && errno == EINTR {}
    }

    static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    /// Opens `path` for appending (created 0600), close-on-exec.
    static func openForAppending(_ path: String) -> Result<Int32, _Errno> {
        while true {
            let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            if fd >= 0 { return .success(fd) }
            if errno != EINTR { return .failure(.current) }
        }
    }

    /// The size of the file `fd` refers to.
    static func fileSize(_ fd: Int32) -> Int? {
        var status = stat()
        return fstat(fd, &status) == 0 ? Int(status.st_size) : nil
    }

    static func unlink(_ path: String) { _ = Glibc.unlink(path) }

    /// Whether something exists at `path` (`access(F_OK)`: one system call, no path rewriting).
    static func pathExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Writes `bytes` to a new file at `path` (mode 0600, replacing one), `fsync`s and closes it:
    /// once this returns true, the bytes survive a crash of this node and any reader that opens
    /// the file after (on NFS too: close-to-open) sees all of them.
    static func writeDurably(_ bytes: [UInt8], to path: String) -> Bool {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        var written = 0
        let ok = bytes.withUnsafeBytes { buffer -> Bool in
            while written < buffer.count {
                let count = Glibc.write(fd, buffer.baseAddress! + written, buffer.count - written)
                if count < 0 { if errno == EINTR { continue }; return false }
                written += count
            }
            return true
        }
        let synced = ok && Glibc.fsync(fd) == 0
        return Glibc.close(fd) == 0 && synced
    }

    /// `fsync` of a directory (a rename in it becomes durable).
    static func syncDirectory(_ path: String) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = Glibc.fsync(fd)
        _ = Glibc.close(fd)
    }

    /// Whether process `pid` exists and is no zombie (`/proc/<pid>/stat`; `kill(pid, 0)` also
    /// succeeds for a zombie nobody reaped).
    static func processIsAlive(_ pid: pid_t) -> Bool {
        let fd = Glibc.open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { _ = Glibc.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard count > 0, let close = buffer[0..<count].lastIndex(of: UInt8(ascii: ")")), close + 2 < count else { return false }
        let state = buffer[close + 2]
        return state != UInt8(ascii: "Z") && state != UInt8(ascii: "X")
    }

    /// `_exit`: ends the process at once (no atexit handlers, no flushing of stdio).
    static func exitNow(_ status: Int32) -> Never { Glibc._exit(status) }

    /// Renames `source` to `destination` atomically (replacing it).
    static func rename(_ source: String, to destination: String) -> Bool { Glibc.rename(source, destination) == 0 }

    /// Reads into `buffer`: the byte count (0 at end of file), retrying EINTR.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Result<Int, _Errno> {
        while true {
            let count = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if count >= 0 { return .success(count) }
            if errno != EINTR { return .failure(.current) }
        }
    }

    /// Writes all of `bytes`, retrying EINTR and short writes. False if a write fails (e.g.
    /// EPIPE: the reader is gone).
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += written
        }
        return true
    }

    // MARK: Memory shared with worker processes

    /// An anonymous file in memory of `bytes` zero bytes (`memfd_create`, close-on-exec), to be
    /// mapped by this process and a child given its descriptor.
    static func makeMemoryFile(name: String, bytes: Int) -> Result<Int32, _Errno> {
        let fd = dataflow_memfd_create(name)
        guard fd >= 0 else { return .failure(.current) }
        while ftruncate(fd, off_t(bytes)) != 0 {
            if errno == EINTR { continue }
            let error = _Errno.current
            _ = Glibc.close(fd)
            return .failure(error)
        }
        return .success(fd)
    }

    /// Maps `bytes` of the file `fd` refers to, shared and writable.
    static func mapShared(_ fd: Int32, bytes: Int) -> Result<UnsafeMutableRawPointer, _Errno> {
        let address = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let address, address != MAP_FAILED else { return .failure(.current) }
        return .success(address)
    }

    static func unmap(_ address: UnsafeMutableRawPointer, bytes: Int) { _ = munmap(address, bytes) }

    /// Empties the file `fd` refers to (its size becomes 0) and moves its offset to the start.
    static func truncateToEmpty(_ fd: Int32) {
        while ftruncate(fd, 0) != 0 && errno == EINTR {}
        _ = lseek(fd, 0, SEEK_SET)
    }

    /// Reads up to `buffer.count` bytes at `offset` of `fd` (0 at end of file), retrying EINTR.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Result<Int, _Errno> {
        while true {
            let count = pread(fd, buffer.baseAddress, buffer.count, off_t(offset))
            if count >= 0 { return .success(count) }
            if errno != EINTR { return .failure(.current) }
        }
    }

    /// The CPU's spin-wait hint (no system call: the core is not given up).
    static func spinPause() { dataflow_spin_pause() }

    /// Whether `count` bytes at `left` and `right` are the same (`memcmp`).
    static func equalBytes(_ left: UnsafeRawPointer, _ right: UnsafeRawPointer, count: Int) -> Bool { memcmp(left, right, count) == 0 }

    /// Sequentially consistent load and store of a word another process maps too.
    static func loadWord(_ word: UnsafeMutablePointer<UInt32>) -> UInt32 { dataflow_word_load(word) }
    static func storeWord(_ word: UnsafeMutablePointer<UInt32>, _ value: UInt32) { dataflow_word_store(word, value) }
    static func loadWord(_ word: UnsafeMutablePointer<UInt64>) -> UInt64 { dataflow_word64_load(word) }
    static func storeWord(_ word: UnsafeMutablePointer<UInt64>, _ value: UInt64) { dataflow_word64_store(word, value) }

    // MARK: Processes

    /// What a spawned child's descriptors are: `target ← source` (dup2 in the child), and files
    /// opened in the child.
    enum FileAction {
        case duplicate(source: Int32, target: Int32)
        case open(path: String, target: Int32, flags: Int32, mode: mode_t)
    }

    /// Starts `executable` with `arguments` (argv[0] included), `environment` ("NAME=value"),
    /// the descriptors `actions` set up, in `workingDirectory` if given, and in a session (and
    /// process group) of its own if `newSession`. The child starts with no signal blocked and
    /// every signal at its default disposition (an ignored SIGPIPE, or the blocked mask of the
    /// thread that spawns it, must not reach it).
    /// - Returns: the child's pid, or the error number of `posix_spawn`.
    static func spawn(
        executable: String, arguments: [String], environment: [String], actions: [FileAction], workingDirectory: String?,
        newSession: Bool
    ) -> Result<pid_t, _Errno> {
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        for action in actions {
            switch action {
            case .duplicate(let source, let target):
                posix_spawn_file_actions_adddup2(&fileActions, source, target)
            case .open(let path, let target, let flags, let mode):
                posix_spawn_file_actions_addopen(&fileActions, target, path, flags, mode)
            }
        }
        // Nothing else is inherited: a descriptor another thread opened without close-on-exec
        // (or a worker's own channels, in a child a task starts) must not keep a pipe open.
        var highestTarget: Int32 = 2
        for action in actions {
            switch action {
            case .duplicate(_, let target), .open(_, let target, _, _): highestTarget = max(highestTarget, target)
            }
        }
        dataflow_spawn_addclosefrom(&fileActions, highestTarget + 1)
        if let workingDirectory { dataflow_spawn_addchdir(&fileActions, workingDirectory) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var flags = Int32(POSIX_SPAWN_SETSIGDEF) | Int32(POSIX_SPAWN_SETSIGMASK)
        if newSession { flags |= Int32(dataflow_spawn_setsid_flag()) }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        let envp = environment.map { strdup($0) } + [nil]
        defer { for variable in envp { free(variable) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &fileActions, &attributes, argv, envp)
        return status == 0 ? .success(pid) : .failure(_Errno(code: status))
    }

    /// This process's environment, as "NAME=value" strings.
    static func environment() -> [String] {
        var result: [String] = []
        var entry = environ
        while let variable = entry.pointee {
            result.append(String(cString: variable))
            entry += 1
        }
        return result
    }

    /// Waits until child `pid` has ended, without reaping it (blocking the calling thread: call
    /// it from a thread of its own). Until it is reaped, its pid cannot be reused.
    static func waitUntilEnded(_ pid: pid_t) {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
    }

    /// Reaps child `pid` (which has ended, or is about to) and says how it ended.
    static func reap(_ pid: pid_t) -> ChildProcess.Exit {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return .exited(-1) }
        }
        let signal = status & 0x7f
        return signal != 0 ? .signalled(signal) : .exited((status >> 8) & 0xff)
    }

    /// Sends `signal` to process `pid` (to its process group when `group`).
    static func kill(_ pid: pid_t, _ signal: Int32, group: Bool = false) {
        _ = Glibc.kill(group ? -pid : pid, signal)
    }

    static func processID() -> pid_t { getpid() }
    static func parentProcessID() -> pid_t { getppid() }
    static func flushStandardStreams() { fflush(nil) }
    static func yield() { sched_yield() }
    /// Sleeps the calling thread (a thread of its own, never one of Swift's concurrency pool).
    static func sleep(seconds: Double) { usleep(useconds_t(max(0, seconds) * 1e6)) }
}
