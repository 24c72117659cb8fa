#if canImport(Glibc)
import Glibc
#endif

/// Writes all of `bytes` to `fd`, retrying after EINTR and short writes. False if a write fails
/// (e.g. EPIPE: the reader is gone).
func _writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
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
