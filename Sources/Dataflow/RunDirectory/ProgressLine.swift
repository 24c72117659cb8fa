import Foundation
import ObjectStore

/// The one-line progress display of a run on a terminal: tasks done, running and failed, store
/// bytes in use and bytes spilled. Rewritten in place (carriage return) at most ten times a
/// second; quiet when standard error is not a terminal (unless asked for).
///
/// - Note: Not thread-safe: the scheduler's loop alone calls it.
final class _ProgressLine {
    private let runID: String
    private let taskCount: Int
    private let write: (@Sendable (String) -> Void)?
    private var lastUpdateNanoseconds: UInt64 = 0
    private static let intervalNanoseconds: UInt64 = 100_000_000

    init(runID: String, taskCount: Int, mode: RunOptions.ProgressMode, writer: (@Sendable (String) -> Void)?) {
        self.runID = runID
        self.taskCount = taskCount
        let enabled: Bool
        switch mode {
        case .never: enabled = false
        case .always: enabled = true
        case .automatic: enabled = isatty(STDERR_FILENO) == 1
        }
        if enabled {
            self.write = writer ?? { FileHandle.standardError.write(Data($0.utf8)) }
        } else {
            self.write = nil
        }
    }

    /// Shows the current state if the last update is old enough (always when `final`).
    /// (`spilledBytes` is read only when a line is written: it takes the spill manager's lock.)
    func update(done: Int, running: Int, failed: Int, store: SharedObjectStore, spilledBytes: @autoclosure () -> Int, final: Bool = false) {
        guard let write else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        guard final || now - lastUpdateNanoseconds >= Self.intervalNanoseconds else { return }
        lastUpdateNanoseconds = now
        let used = (try? store.statistics().allocatedBytes) ?? 0
        let line = "[\(runID)] \(done)/\(taskCount) done, \(running) running, \(failed) failed | store \(Self.bytes(used)) in use, \(Self.bytes(spilledBytes())) spilled"
        write("\r\(line)\u{1B}[K" + (final ? "\n" : ""))
    }

    static func bytes(_ count: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }
}
