import Foundation
import ObjectStore
import Testing

/// Real child processes attach, read, write, and get SIGKILLed at the worst moments.
@Suite(.serialized) struct CrossProcessTests {
    @Test func childReadsTheParentsObjectInPlace() throws {
        try withStore { store in
            let id = ObjectID.random()
            let handle = try store.put(patternBytes(100_000), id: id)
            let child = try ChildProcess(["read", store.name, id.description])
            let words = try child.waitUntilReady()
            #expect(child.waitForExit() == 0)
            // Same offset in the same segment: the child read the parent's bytes, not a copy.
            #expect(Int(words[0]) == handle.descriptor.payloadOffset)
            #expect(Int(words[1]) == 100_000)
            #expect(Int(words[2]) == patternBytes(100_000).reduce(0) { $0 + Int($1) })
            _ = try store.reclaimDeadProcesses()
            #expect(try store.statistics().attachedProcessCount == 1)
        }
    }

    @Test func parentReadsAnObjectTheChildCreated() throws {
        try withStore { store in
            let id = ObjectID.random()
            let child = try ChildProcess(["create-seal", store.name, id.description, "50000", "9"])
            let words = try child.waitUntilReady()
            #expect(child.waitForExit() == 0)
            let handle = try store.get(id)
            #expect(handle.descriptor.payloadOffset == Int(words[0]))
            #expect(handle.copyBytes() == [UInt8](repeating: 9, count: 50_000))
        }
    }

    @Test func objectOfACreatorKilledMidWriteIsReclaimed() throws {
        try withStore(capacity: 64 << 20) { store in
            let id = ObjectID.random()
            let child = try ChildProcess(["create-hang", store.name, id.description, "\(40 << 20)"])
            _ = try child.waitUntilReady()
            var stats = try store.statistics()
            #expect(stats.creatingCount == 1 && stats.creatingBytes == 40 << 20)
            expectStoreError(.objectNotSealed) { try store.get(id) }
            child.kill()
            let report = try store.reclaimDeadProcesses()
            #expect(report.deadProcessIDs == [child.pid])
            #expect(report.reclaimedUnsealedObjects == 1)
            stats = try store.statistics()
            #expect(stats.objectCount == 0 && stats.allocatedBytes == 0 && stats.attachedProcessCount == 1)
            // The store stays usable, and the id is free again.
            try store.put(patternBytes(10), id: id)
            #expect(try store.get(id).copyBytes() == patternBytes(10))
        }
    }

    @Test func spaceOfAKilledCreatorIsReclaimedWhenMemoryRunsShort() throws {
        try withStore(capacity: 8 << 20) { store in
            let child = try ChildProcess(["create-hang", store.name, ObjectID.random().description, "\(6 << 20)"])
            _ = try child.waitUntilReady()
            child.kill()
            // No explicit reclaim: the allocation that does not fit sweeps dead processes itself.
            var builder = try store.create(.random(), byteCount: 6 << 20)
            try builder.seal()
        }
    }

    @Test func referencesOfAKilledReaderAreReleased() throws {
        try withStore { store in
            let id = ObjectID.random()
            try store.put(patternBytes(4096), id: id)
            let child = try ChildProcess(["get-hang", store.name, id.description])
            _ = try child.waitUntilReady()
            #expect(try store.statistics().sealedInUseCount == 1)
            try store.delete(id)  // pending: the child holds it
            #expect(try store.statistics().deletePendingCount == 1)
            child.kill()
            let report = try store.reclaimDeadProcesses()
            #expect(report.releasedReferences == 1 && report.freedPendingDeletes == 1)
            let stats = try store.statistics()
            #expect(stats.objectCount == 0 && stats.allocatedBytes == 0)
        }
    }

    /// A child killed while holding the store's lock, in the middle of an allocation: the
    /// parent's next operation gets the lock (robust mutex), rebuilds the bookkeeping from the
    /// object table, and the half-made allocation is returned to the heap.
    @Test func lockHeldByAKilledProcessNeverDeadlocks() throws {
        try withStore(capacity: 8 << 20) { store in
            let kept = ObjectID.random()
            try store.put(patternBytes(3000), id: kept)
            let before = try store.statistics()
            let child = try ChildProcess(["lock-hang", store.name, "\(1 << 20)"])
            _ = try child.waitUntilReady()
            Thread.sleep(forTimeInterval: 0.2)  // "ready" is printed just before the lock is taken
            child.kill()
            // Would block forever with an ordinary mutex.
            let stats = try store.statistics()
            #expect(stats.lockOwnerDeathRecoveries == 1)
            #expect(stats.allocatedBytes == before.allocatedBytes)  // the orphan block is free again
            #expect(try store.get(kept).copyBytes() == patternBytes(3000))
            try store.verifyIntegrity()
            try store.reclaimDeadProcesses()
            #expect(try store.statistics().attachedProcessCount == 1)
        }
    }

    /// Recovery repairs a table damaged mid-operation in place: a gap in a probe run (an entry
    /// lost mid-delete, stranding the displaced entry behind it) and a duplicate (a shift cut off
    /// between copy and clear). Every other object stays reachable, the lost one's block is
    /// freed, and the heap adds up.
    @Test func recoveryRepairsAGapAndADuplicateInPlace() throws {
        try withStore(capacity: 4 << 20, options: StoreOptions(maxObjects: 600)) { store in
            // 500 objects in a 2,048-slot table: plenty of displaced entries.
            let ids = (0..<500).map { ObjectID(deriving: "recover-\($0)") }
            for (index, id) in ids.enumerated() { try store.put(patternBytes(100 + index % 50, seed: index), id: id) }
            let damage = try #require(try store._testingDamageTableAndRecover())
            #expect(damage.dropped == 1)  // the duplicate
            try store.verifyIntegrity()
            #expect(!store.contains(damage.removed))
            #expect(store.contains(damage.stranded) && store.contains(damage.duplicated))
            for (index, id) in ids.enumerated() where id != damage.removed {
                #expect(try store.get(id).copyBytes() == patternBytes(100 + index % 50, seed: index))
            }
            let stats = try store.statistics()
            #expect(stats.objectCount == 499 && stats.lockOwnerDeathRecoveries == 1)
        }
    }

    @Test func deadProcessesAreSweptWhenAnotherAttaches() throws {
        try withStore { store in
            let id = ObjectID.random()
            try store.put(patternBytes(10), id: id)
            let holder = try ChildProcess(["get-hang", store.name, id.description])
            _ = try holder.waitUntilReady()
            holder.kill()
            // The next process to attach sweeps the dead one before taking a slot.
            let reader = try ChildProcess(["read", store.name, id.description])
            _ = try reader.waitUntilReady()
            reader.waitForExit()
            #expect(try store.statistics().sealedInUseCount == 0)
            #expect(try store.statistics().reclaimedProcessCount >= 1)
        }
    }
}
