// Every file syscall of the Materialize module goes through this file: each reads errno at once,
// retries EINTR, and returns `Result<_, Errno>`. No other Materialize file imports Glibc.

#if canImport(Glibc)
import Glibc
#endif
import ObjectStore
import SystemPackage

enum _FileSyscall {
    /// ObjectStore's retry loop: EINTR retried, errno read at once.
    static func retrying<T: FixedWidthInteger>(_ body: () -> T) -> Result<T, Errno> {
        retryingOnInterrupt(body)
    }

    /// Creates `path` exclusively, write-only, mode 0600. The corresponding C call is `open`.
    static func createExclusive(_ path: String) -> Result<Int32, Errno> {
        retrying { open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
    }

    /// Opens `path` read-only. The corresponding C call is `open`.
    static func openForReading(_ path: String) -> Result<Int32, Errno> {
        retrying { open(path, O_RDONLY | O_CLOEXEC) }
    }

    /// Opens an existing file for writing in place. The corresponding C call is `open`.
    static func openForWriting(_ path: String) -> Result<Int32, Errno> {
        retrying { open(path, O_WRONLY | O_CLOEXEC) }
    }

    /// Opens a directory, for `fsync`. The corresponding C call is `open(O_DIRECTORY)`.
    static func openDirectory(_ path: String) -> Result<Int32, Errno> {
        retrying { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    }

    static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    /// Writes all of `bytes` at `offset`, looping over short writes. The C call is `pwrite`.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) -> Result<Void, Errno> {
        var done = 0
        while done < bytes.count {
            let chunk = min(bytes.count - done, 1 << 30)
            switch retrying({ pwrite(fd, bytes.baseAddress! + done, chunk, off_t(offset + done)) }) {
            case .success(let written): done += written
            case .failure(let errno): return .failure(errno)
            }
        }
        return .success(())
    }

    /// Reads up to `bytes.count` bytes at `offset`, looping over short reads; returns the count
    /// read (less only at end of file). The corresponding C call is `pread`.
    static func readFully(_ fd: Int32, into bytes: UnsafeMutableRawBufferPointer, at offset: Int) -> Result<Int, Errno> {
        var done = 0
        while done < bytes.count {
            let chunk = min(bytes.count - done, 1 << 30)
            switch retrying({ pread(fd, bytes.baseAddress! + done, chunk, off_t(offset + done)) }) {
            case .success(0): return .success(done)
            case .success(let count): done += count
            case .failure(let errno): return .failure(errno)
            }
        }
        return .success(done)
    }

    /// Flushes a file's data and metadata to disk. The corresponding C call is `fsync`.
    static func sync(_ fd: Int32) -> Result<Void, Errno> {
        retrying { fsync(fd) }.map { _ in () }
    }

    /// Size of the file behind `fd`. The corresponding C call is `fstat`.
    static func size(_ fd: Int32) -> Result<Int, Errno> {
        var status = stat()
        return retrying { fstat(fd, &status) }.map { _ in Int(status.st_size) }
    }

    /// Atomically renames `from` to `to` (same file system). The C call is `rename`.
    static func rename(_ from: String, _ to: String) -> Result<Void, Errno> {
        retrying { Glibc.rename(from, to) }.map { _ in () }
    }

    /// Removes a file. The corresponding C call is `unlink`.
    static func unlink(_ path: String) -> Result<Void, Errno> {
        retrying { Glibc.unlink(path) }.map { _ in () }
    }

    /// Creates a directory with mode 0700; an existing one is fine. The C call is `mkdir`.
    static func makeDirectory(_ path: String) -> Result<Void, Errno> {
        switch retrying({ mkdir(path, 0o700) }) {
        case .success, .failure(.fileExists): return .success(())
        case .failure(let errno): return .failure(errno)
        }
    }

    /// Drops the file's pages from the page cache (for cold-read measurements and tests).
    /// The corresponding C call is `posix_fadvise(POSIX_FADV_DONTNEED)`.
    static func dropCachedPages(_ fd: Int32) {
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
    }

    /// Whether process `pid` exists (for sweeping temporary files of dead writers).
    static func processExists(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }

    static func processID() -> Int32 { getpid() }
}
