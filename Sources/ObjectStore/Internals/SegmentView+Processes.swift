// The process table: one slot per attached process, identified by (pid, start time) so that a
// reused pid is not mistaken for the process that died. Slot i is bit i of every entry's
// `holders` mask and the `creator` of the objects that process is creating.
//
// Requires the segment mutex.

extension _SegmentView {
    /// Takes a free slot for process (`pid`, `startTime`); nil when all are taken by live processes.
    func registerProcess(pid: Int32, startTime: UInt64) -> Int? {
        for index in 0..<_Layout.processSlotCount where !processSlot(index).isAttached {
            processSlot(index).attach(pid: pid, startTime: startTime)
            return index
        }
        return nil
    }

    /// Whether the process in slot `index` may still be running. False only when it is known
    /// to be gone: no such process, a zombie, or a new process that reuses its pid. When `/proc`
    /// cannot be read it is assumed alive: releasing a live process's references would let its
    /// objects be freed under it.
    func isProcessAlive(slot index: Int) -> Bool {
        let slot = processSlot(index)
        guard slot.isAttached else { return false }
        switch _Syscall.processStatus(slot.pid) {
        case .running(let startTime): return startTime == slot.startTime
        case .dead: return false
        case .unknown: return true
        }
    }

    /// Pids of the attached processes, by slot.
    func attachedProcesses() -> [(slot: Int, pid: Int32)] {
        (0..<_Layout.processSlotCount).compactMap { index in
            processSlot(index).isAttached ? (index, processSlot(index).pid) : nil
        }
    }
}
