import Dataflow
import DataflowCLI
import Foundation
import ObjectStore

/// A snapshot of one store, for `dataflow store stats`.
struct StoreReport: Codable, Sendable {
    /// A large object and what holds it.
    struct LargeObject: Codable, Sendable {
        var id: String
        var bytes: Int
        var state: String
        var holderProcesses: Int
        var pinned: Bool
    }

    var name: String
    var instanceID: String
    var statistics: StoreStatistics
    var objectCount: Int
    var processIDs: [Int32]
    /// This command's own pid (it is attached while it looks).
    var ownProcessID: Int32
    /// The largest objects in any state, largest first (at most 5).
    var largestObjects: [LargeObject]
    /// Idle (sealed, unreferenced, unpinned) bytes: what spilling or eviction could free.
    var evictableBytes: Int?
    var spillDirectory: String?
    var spilledFiles: Int?
    var spilledBytes: Int?

    /// Attaches to store `name` and takes the snapshot.
    /// - Throws: `CommandError.storeNotFound` naming the store; `.storeUnreadable`.
    static func make(storeNamed name: String, workdir: String) throws(CommandError) -> StoreReport {
        do { try SharedObjectStore.validate(name: name) } catch {
            throw .invalidName(kind: "store", name: name, reason: "use 1-200 characters from [A-Za-z0-9._-], not starting with '.'")
        }
        guard SharedObjectStore.exists(named: name) else { throw .storeNotFound(name: name) }
        let store: SharedObjectStore
        do { store = try SharedObjectStore.attach(named: name) } catch {
            if error.code == .storeNotFound { throw .storeNotFound(name: name) }
            throw .storeUnreadable(name: name, reason: error.message)
        }
        let statistics: StoreStatistics, pids: [Int32]
        do {
            statistics = try store.statistics()
            pids = try store.attachedProcessIDs()
        } catch {
            throw .storeUnreadable(name: name, reason: error.message)
        }
        let capacity = largestHolders(store, statistics)
        var report = StoreReport(
            name: name, instanceID: store.instanceID.description, statistics: statistics, objectCount: statistics.objectCount,
            processIDs: pids, ownProcessID: getpid(), largestObjects: capacity?.largestHolders.map {
                LargeObject(id: $0.id.description, bytes: $0.byteCount, state: $0.state.rawValue, holderProcesses: $0.holderProcessCount, pinned: $0.isPinned)
            } ?? [], evictableBytes: capacity?.evictableBytes ?? (statistics.objectCount == 0 ? 0 : nil))
        let spill = "\(RunDirectory.spillRoot(workdir: workdir))/\(name)-\(store.instanceID)"
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: spill, isDirectory: &isDirectory), isDirectory.boolValue {
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: spill)) ?? []).filter { $0.hasSuffix(".dfspill") }
            report.spillDirectory = spill
            report.spilledFiles = files.count
            report.spilledBytes = files.reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: "\(spill)/\($1)")[.size] as? Int) ?? 0) }
        }
        return report
    }

    /// The store's capacity report: its largest objects and evictable bytes.
    private static func largestHolders(_ store: SharedObjectStore, _ statistics: StoreStatistics) -> CapacityReport? {
        guard statistics.allocatedBytes > 0 else { return nil }
        return try? store.capacityReport()
    }

    /// The text `store stats` prints.
    var text: String {
        let s = statistics
        func line(_ label: String, _ count: Int, _ bytes: Int) -> [String] { [label, "\(count)", ByteSize.human(bytes), "\(bytes)"] }
        var out = "store '\(name)' (instance \(instanceID))\n"
        out += "  capacity       \(ByteSize.human(s.capacityBytes)) of heap (segment \(ByteSize.human(s.segmentBytes)), at most \(s.maxObjects) objects)\n"
        out += "  allocated      \(ByteSize.human(s.allocatedBytes)) (\(percent(s.allocatedBytes, of: s.capacityBytes))), high water \(ByteSize.human(s.highWaterBytes)) (\(percent(s.highWaterBytes, of: s.capacityBytes)))\n"
        out += "  free           \(ByteSize.human(s.freeBytes)), largest free block \(ByteSize.human(s.largestFreeBlockBytes))\n"
        out += "  processes      \(processIDs.count) attached: \(processIDs.map { $0 == ownProcessID ? "\($0) (this command)" : "\($0)" }.joined(separator: ", "))\n"
        if s.reclaimedProcessCount > 0 || s.lockOwnerDeathRecoveries > 0 {
            out += "  recovered      \(s.reclaimedProcessCount) dead process(es) reclaimed, \(s.lockOwnerDeathRecoveries) lock-owner recoveries\n"
        }
        out += "\n"
        var table = TextTable(["objects by state", "count", "bytes", "exact bytes"], rightAligned: [1, 2, 3])
        table.append(line("creating", s.creatingCount, s.creatingBytes))
        table.append(line("sealed, in use", s.sealedInUseCount, s.sealedInUseBytes))
        table.append(line("sealed, idle", s.sealedIdleCount, s.sealedIdleBytes))
        table.append(line("delete pending", s.deletePendingCount, s.deletePendingBytes))
        table.append(line("total", s.objectCount, s.creatingBytes + s.sealedInUseBytes + s.sealedIdleBytes + s.deletePendingBytes))
        out += table.render()
        if !largestObjects.isEmpty {
            out += "\nlargest objects (what pins memory):\n"
            var holders = TextTable(["object", "bytes", "state", "held by", "pinned"], rightAligned: [1, 3])
            for object in largestObjects {
                holders.append([object.id, ByteSize.human(object.bytes), object.state, "\(object.holderProcesses) process(es)", object.pinned ? "yes" : "no"])
            }
            out += holders.render().split(separator: "\n").map { "  \($0)\n" }.joined()
        }
        if let evictableBytes { out += "\nevictable (idle, unpinned) bytes: \(ByteSize.human(evictableBytes))\n" }
        if let spillDirectory {
            out += "spilled: \(spilledFiles ?? 0) file(s), \(ByteSize.human(spilledBytes ?? 0)) in \(spillDirectory)\n"
        } else {
            out += "spilled: none (no spill directory for this store instance under the work directory)\n"
        }
        return out.hasSuffix("\n") ? String(out.dropLast()) : out
    }

    private func percent(_ part: Int, of whole: Int) -> String {
        whole > 0 ? String(format: "%.1f%%", Double(part) * 100 / Double(whole)) : "-"
    }
}
