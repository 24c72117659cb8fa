import Foundation
import Materialize
import ObjectStore
import Testing

/// The policy table of DESIGN.md, cell by cell: for each policy, whether the value is in memory,
/// when it is written to a file, and when it is freed.
@Suite struct PolicyTableTests {
    /// A store, spill manager and materializer for one test.
    func withMaterializer(capacity: Int = 8 << 20, high: Double = 0.85, low: Double = 0.7, _ body: (Materializer) throws -> Void) throws {
        try withStore(capacity: capacity) { store in
            try withTemporaryDirectory { root in
                let spill = try SpillManager(store: store, rootDirectory: "\(root)/spill", watermarks: .init(high: high, low: low))
                try body(try Materializer(spill: spill, runDirectory: "\(root)/run"))
            }
        }
    }

    func produce(_ materializer: Materializer, _ name: String, count: Int = 100_000) throws -> ObjectHandle {
        try materializer.store.put(Tensor(quantisedFloats(count)), id: ObjectID(deriving: name))
    }

    func files(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    // MARK: always

    @Test func alwaysKeepsTheValueInMemoryWhileConsumersRemain() throws {
        try withMaterializer { m in
            let handle = try produce(m, "a")
            let record = try m.register(handle, name: "a", policy: .always, facts: .init(remainingConsumers: 2))
            #expect(record.inMemory && m.store.contains(handle.id))
            try m.consumerFinished(handle.id)
            #expect(m.store.contains(handle.id))
        }
    }

    @Test func alwaysWritesThroughToTheRunDirectoryAfterSeal() throws {
        try withMaterializer { m in
            let handle = try produce(m, "a")
            let record = try m.register(handle, name: "a", policy: .always, facts: .init(remainingConsumers: 1))
            #expect(record.files == ["\(m.valuesDirectory)/a.dfspill"])
            // Self-describing: read back from the path alone.
            let file = try SpillFile.read(at: record.files[0])
            #expect(file.header.typeTag == "tensor<float32>" && file.value == handle.copyBytes())
        }
    }

    @Test func alwaysFreesAfterTheLastConsumerAndKeepsTheFile() throws {
        try withMaterializer { m in
            let id: ObjectID
            do {
                let handle = try produce(m, "a")
                id = handle.id
                try m.register(handle, name: "a", policy: .always, facts: .init(remainingConsumers: 1))
            }
            let record = try m.consumerFinished(id)
            #expect(!record.inMemory && !m.store.contains(id))
            #expect(files(in: m.valuesDirectory) == ["a.dfspill"])
            #expect(try m.store.statistics().objectCount == 0)
        }
    }

    // MARK: auto

    @Test func autoKeepsTheValueInMemoryWithoutAFile() throws {
        try withMaterializer { m in
            let handle = try produce(m, "v")
            let record = try m.register(handle, name: "v", policy: .auto, facts: .init(remainingConsumers: 1))
            #expect(record.files.isEmpty && record.inMemory)
            #expect(files(in: m.valuesDirectory).isEmpty && files(in: m.exchangeDirectory).isEmpty)
            #expect(!m.spill.hasSpillFile(handle.id))
        }
    }

    @Test func autoWritesAFileWhenAConsumerNeedsOne() throws {
        try withMaterializer { m in
            let shell = try produce(m, "for-shell")
            let record = try m.register(shell, name: "for-shell", policy: .auto, facts: .init(consumerNeedsFile: true))
            #expect(record.files == ["\(m.exchangeDirectory)/for-shell.dfspill"])
            let remote = try produce(m, "for-remote")
            let remoteRecord = try m.register(remote, name: "for-remote", policy: .auto, facts: .init(everyConsumerReachesStore: false))
            #expect(remoteRecord.files.count == 1)
            // A value registered without a file gets one when a consumer asks.
            let late = try produce(m, "late")
            try m.register(late, name: "late", policy: .auto, facts: .init())
            #expect(try m.file(for: late.id) == "\(m.exchangeDirectory)/late.dfspill")
        }
    }

    @Test func autoSpillsUnderPressureAndRestoresOnDemand() throws {
        try withMaterializer(capacity: 4 << 20, high: 0.5, low: 0.3) { m in
            var ids: [ObjectID] = []
            for index in 0..<8 {
                let handle = try produce(m, "p\(index)", count: 96 * 1024)  // 384 KiB each, 3 MiB in all
                try m.register(handle, name: "p\(index)", policy: .auto, facts: .init())
                ids.append(handle.id)
            }
            let report = m.spill.relieveMemoryPressure()
            #expect(report.spilledObjects > 0)
            #expect(!m.store.contains(ids[0]) && m.spill.hasSpillFile(ids[0]))
            let back = try m.spill.get(ids[0], as: Tensor<Float>.self)
            #expect(back.scalars == quantisedFloats(96 * 1024))
        }
    }

    @Test func autoFreesAfterTheLastConsumerAndRemovesItsFiles() throws {
        try withMaterializer { m in
            let id: ObjectID
            do {
                let handle = try produce(m, "v")
                id = handle.id
                try m.register(handle, name: "v", policy: .auto, facts: .init(consumerNeedsFile: true, remainingConsumers: 2))
            }
            try m.spill.spill(id)  // also spilled meanwhile
            #expect(m.spill.hasSpillFile(id))
            try m.consumerFinished(id)
            #expect(files(in: m.exchangeDirectory) == ["v.dfspill"])  // one consumer left
            let record = try m.consumerFinished(id)
            #expect(!record.inMemory && record.files.isEmpty)
            #expect(!m.store.contains(id) && !m.spill.hasSpillFile(id))
            #expect(files(in: m.exchangeDirectory).isEmpty)
        }
    }

    @Test func autoKeepsARequestedResult() throws {
        try withMaterializer { m in
            let handle = try produce(m, "result")
            let record = try m.register(handle, name: "result", policy: .auto, facts: .init(consumerNeedsFile: true, remainingConsumers: 0, isRequestedResult: true))
            #expect(record.inMemory && m.store.contains(handle.id) && record.files.count == 1)
        }
    }

    // MARK: never

    @Test func neverKeepsTheValueOnlyInMemoryPinned() throws {
        try withMaterializer(capacity: 4 << 20, high: 0.1, low: 0.05) { m in
            let handle = try produce(m, "n")
            let id = handle.id
            try m.register(handle, name: "n", policy: .never, facts: .init())
            #expect(m.store.isPinned(id))
            _ = handle
            m.spill.relieveMemoryPressure(force: true)  // under pressure: still in memory, no file
            #expect(m.store.contains(id) && !m.spill.hasSpillFile(id))
        }
    }

    @Test func neverWritesNoFileEver() throws {
        try withMaterializer { m in
            let handle = try produce(m, "n")
            let record = try m.register(handle, name: "n", policy: .never, facts: .init())
            #expect(record.files.isEmpty)
            let error = expectMaterializeError(.policyConflict) { try m.file(for: handle.id) }
            #expect(error?.message.contains("'n'") == true)
            let conflict = expectMaterializeError(.policyConflict) {
                try m.register(try produce(m, "m"), name: "m", policy: .never, facts: .init(consumerNeedsFile: true))
            }
            #expect(conflict?.message.contains("never") == true)
            #expect(files(in: m.valuesDirectory).isEmpty && files(in: m.exchangeDirectory).isEmpty)
        }
    }

    @Test func neverIsFreedRightAfterTheLastConsumer() throws {
        try withMaterializer { m in
            let id: ObjectID
            do {
                let handle = try produce(m, "n")
                id = handle.id
                try m.register(handle, name: "n", policy: .never, facts: .init(remainingConsumers: 1))
            }
            let record = try m.consumerFinished(id)
            #expect(!record.inMemory && !m.store.contains(id))
            #expect(try m.store.statistics().objectCount == 0)
        }
    }

    @Test func neverUnderPressureMakesTheProducerWaitThenFail() throws {
        try withMaterializer(capacity: 1 << 20) { m in
            let big = try m.store.put([UInt8](repeating: 1, count: 700 * 1024), id: ObjectID(deriving: "big"))
            try m.register(big, name: "big", policy: .never, facts: .init())
            let error = expectMaterializeError(.noRoom) { try m.create(.random(), byteCount: 500 * 1024, timeout: 0.2) }
            #expect(error?.message.contains(big.id.description) == true)
        }
    }

    // MARK: final

    @Test func finalKeepsTheValueInMemory() throws {
        try withMaterializer { m in
            let handle = try produce(m, "f")
            let record = try m.register(handle, name: "f", policy: .final, facts: .init(remainingConsumers: 1))
            #expect(record.inMemory && m.store.contains(handle.id))
        }
    }

    @Test func finalWritesOnlyLeavesToTheRunDirectory() throws {
        try withMaterializer { m in
            let leaf = try produce(m, "leaf")
            let leafRecord = try m.register(leaf, name: "leaf", policy: .final, facts: .init(isLeaf: true, remainingConsumers: 0))
            #expect(leafRecord.files == ["\(m.valuesDirectory)/leaf.dfspill"])
            let inner = try produce(m, "inner")
            let innerRecord = try m.register(inner, name: "inner", policy: .final, facts: .init(remainingConsumers: 1))
            #expect(innerRecord.files.isEmpty)
            #expect(files(in: m.valuesDirectory) == ["leaf.dfspill"])
            #expect(try SpillFile.read(at: leafRecord.files[0]).value == leaf.copyBytes())
        }
    }

    @Test func finalIsFreedLikeAutoAndKeepsTheLeafFile() throws {
        try withMaterializer { m in
            let inner: ObjectID, leaf: ObjectID
            do {
                let handle = try produce(m, "inner")
                inner = handle.id
                try m.register(handle, name: "inner", policy: .final, facts: .init(consumerNeedsFile: true, remainingConsumers: 1))
                let leafHandle = try produce(m, "leaf")
                leaf = leafHandle.id
                try m.register(leafHandle, name: "leaf", policy: .final, facts: .init(isLeaf: true, remainingConsumers: 0))
            }
            let innerRecord = try m.consumerFinished(inner)
            #expect(!innerRecord.inMemory && innerRecord.files.isEmpty && files(in: m.exchangeDirectory).isEmpty)
            let leafRecord = try m.record(for: leaf)
            #expect(!leafRecord.inMemory && !m.store.contains(leaf))  // no consumers: freed at once
            #expect(files(in: m.valuesDirectory) == ["leaf.dfspill"])
        }
    }

    /// Review findings: sanitised names must not collide, and a repeated last-consumer report
    /// must not delete a new object that reuses the id.
    @Test func fileNamesDoNotCollideAndValuesFinishOnce() throws {
        try withMaterializer { m in
            let slash = try m.register(try produce(m, "out/a"), name: "out/a", policy: .always, facts: .init())
            let underscore = try m.register(try produce(m, "out_a"), name: "out_a", policy: .always, facts: .init())
            #expect(slash.files != underscore.files)
            #expect(files(in: m.valuesDirectory).count == 2)
            let id = ObjectID(deriving: "once")
            do {
                let handle = try m.store.put(Tensor(quantisedFloats(100)), id: id)
                try m.register(handle, name: "once", policy: .auto, facts: .init(remainingConsumers: 1))
            }
            try m.consumerFinished(id)
            try m.store.put("a new object with the same id", id: id)
            try m.consumerFinished(id)
            #expect(m.store.contains(id))
        }
    }

    // MARK: The plan itself

    @Test func everyPolicyHasAPlanForEveryCombinationOfFacts() throws {
        for policy in MaterializationPolicy.allCases {
            for isLeaf in [false, true] {
                for needsFile in [false, true] {
                    for reaches in [false, true] {
                        for requested in [false, true] {
                            let facts = ValueFacts(isLeaf: isLeaf, consumerNeedsFile: needsFile, everyConsumerReachesStore: reaches, remainingConsumers: isLeaf ? 0 : 1, isRequestedResult: requested)
                            let conflict = policy == .never && (needsFile || !reaches)
                            do {
                                let plan = try MaterializationPlan.make(policy: policy, facts: facts)
                                #expect(!conflict)
                                #expect(plan.pinnedInMemory == (policy == .never))
                                #expect(plan.spillableUnderPressure == (policy != .never))
                                // A requested result is kept under every policy.
                                #expect(plan.freeAfterLastConsumer == !requested)
                                #expect((plan.fileAfterSeal == .runDirectory) == (policy == .always || (policy == .final && isLeaf)))
                                #expect(!plan.reason.isEmpty)
                            } catch {
                                #expect(conflict && error.code == .policyConflict)
                            }
                        }
                    }
                }
            }
        }
    }
}
