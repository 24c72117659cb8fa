import Foundation
import ObjectStore
import Testing

struct TrainingConfig: Codable, Equatable, Sendable {
    var learningRate: Double
    var epochs: Int
    var name: String
}
extension TrainingConfig: StoreValue {}

/// Typed values: tensors are zero-copy views; bytes, strings and Codable values are copies.
@Suite struct TypedValueTests {
    /// Large copies go through `ParallelCopy` (split over the cores): the bytes come out exact
    /// at sizes around its threshold and at sizes that are no whole number of pages. (Filled and
    /// compared 8 bytes at a time, with `memcmp`: under ThreadSanitizer an element-wise loop over
    /// megabytes takes minutes.)
    @Test func largeCopiesAreExact() throws {
        func pattern(_ bytes: UnsafeMutableRawBufferPointer, seed: UInt64) {
            var state = seed
            for word in 0..<(bytes.count / 8) {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                bytes.storeBytes(of: state, toByteOffset: word * 8, as: UInt64.self)
            }
            for index in (bytes.count / 8 * 8)..<bytes.count { bytes[index] = UInt8(truncatingIfNeeded: index) }
        }
        for byteCount in [ParallelCopy.threshold - 1, ParallelCopy.threshold + 4097, (9 << 20) + 13] {
            let source = UnsafeMutableRawBufferPointer.allocate(byteCount: byteCount, alignment: 64)
            let target = UnsafeMutableRawBufferPointer.allocate(byteCount: byteCount + 8, alignment: 64)
            defer { source.deallocate(); target.deallocate() }
            pattern(source, seed: UInt64(byteCount))
            target.initializeMemory(as: UInt8.self, repeating: 0)
            ParallelCopy.copy(to: target, from: UnsafeRawBufferPointer(source))
            #expect(memcmp(target.baseAddress!, source.baseAddress!, byteCount) == 0, "\(byteCount) bytes")
            #expect(target[byteCount...].allSatisfy { $0 == 0 }, "nothing past the end")
        }
        try withStore(capacity: 64 << 20) { store in
            let byteCount = (9 << 20) + 7
            let bytes = [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, count in
                pattern(UnsafeMutableRawBufferPointer(buffer), seed: 7)
                count = byteCount
            }
            let handle = try store.put(bytes, id: ObjectID(deriving: "big-bytes"))
            let same = handle.withUnsafeBytes { stored in bytes.withUnsafeBytes { memcmp(stored.baseAddress!, $0.baseAddress!, byteCount) == 0 } }
            #expect(handle.byteCount == byteCount && same)
            let floatCount = (5 << 20) + 3
            let floats = [Float](unsafeUninitializedCapacity: floatCount) { buffer, count in
                for index in 0..<floatCount { buffer[index] = Float(index % 1000) }
                count = floatCount
            }
            let tensor = try store.put(Tensor(floats), id: ObjectID(deriving: "big-tensor"))
            let read = try store.get(tensor.id, as: Tensor<Float>.self)
            let equal = read.withUnsafeBufferPointer { view in floats.withUnsafeBytes { memcmp(UnsafeRawPointer(view.baseAddress!), $0.baseAddress!, floatCount * 4) == 0 } }
            #expect(read.count == floatCount && equal)
        }
    }

    @Test func tensorWrittenInPlaceIsReadAsAView() throws {
        try withStore { store in
            let id = ObjectID.random()
            let made = try store.makeTensor(id, shape: [3, 4], of: Float.self) { span in
                for index in span.indices { span[index] = Float(index) * 0.5 }
            }
            let read = try store.get(id, as: Tensor<Float>.self)
            #expect(read.shape == [3, 4])
            #expect(read.count == 12)
            #expect(Array(read) == (0..<12).map { Float($0) * 0.5 })
            // No copy: the view's scalars are the very bytes in the store, 64-byte aligned.
            let viewAddress = read.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!) }
            let madeAddress = made.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!) }
            let objectAddress = try #require(read.handle).withUnsafeBytes { $0.baseAddress! }
            #expect(viewAddress == madeAddress)
            #expect(viewAddress == objectAddress + 64)
            #expect(Int(bitPattern: viewAddress) % 64 == 0)
            #expect(read.handle?.typeTag == "tensor<float32>")
        }
    }

    @Test func tensorViewKeepsItsObjectAlive() throws {
        try withStore { store in
            let id = ObjectID.random()
            var view: Tensor<Double>? = try store.put(Tensor<Double>([1, 2, 3]), id: id).decode(as: Tensor<Double>.self)
            try store.delete(id)
            #expect(try store.statistics().deletePendingCount == 1)
            #expect(view?.scalars == [1, 2, 3])
            view = nil
            let stats = try store.statistics()
            #expect(stats.objectCount == 0 && stats.allocatedBytes == 0)
        }
    }

    @Test func tensorsOfEveryScalarTypeRoundTrip() throws {
        try withStore { store in
            func roundTrip<S: TensorScalar & Equatable>(_ values: [S]) throws {
                let id = ObjectID.random()
                try store.put(try Tensor(shape: [values.count, 1], scalars: values), id: id)
                let back = try store.get(id, as: Tensor<S>.self)
                #expect(back.scalars == values && back.shape == [values.count, 1])
            }
            try roundTrip([Float(1.5), -2])
            try roundTrip([Double.pi, .infinity])
            try roundTrip([Int8.min, 0, .max])
            try roundTrip([Int16.min, .max])
            try roundTrip([Int32.min, .max])
            try roundTrip([Int64.min, .max])
            try roundTrip([UInt8.max, 0])
            try roundTrip([UInt16.max])
            try roundTrip([UInt32.max])
            try roundTrip([UInt64.max])
            try roundTrip([Int.min, 42])
            // Rank 0 (a scalar) and an empty tensor.
            try store.put(try Tensor<Float>(shape: [], scalars: [7]), id: ObjectID(deriving: "scalar"))
            #expect(try store.get(ObjectID(deriving: "scalar"), as: Tensor<Float>.self).scalars == [7])
            try store.put(try Tensor<Float>(shape: [0, 5], scalars: []), id: ObjectID(deriving: "empty"))
            #expect(try store.get(ObjectID(deriving: "empty"), as: Tensor<Float>.self).count == 0)
        }
    }

    @Test func badTensorShapesAreTypedErrors() throws {
        expectStoreError(.invalidSize) { try Tensor<Float>(shape: [2, 2], scalars: [1, 2, 3]) }
        expectStoreError(.invalidSize) { try Tensor<Float>(shape: [-1], scalars: []) }
        try withStore { store in
            expectStoreError(.valueTooLarge) { try store.makeTensor(.random(), shape: [Int.max, 2], of: Float.self) { _ in } }
            let error = expectStoreError(.invalidSize) { try store.makeTensor(.random(), shape: [1 << 30], of: Float.self) { _ in } }
            #expect(error?.message.contains("capacity") == true)
        }
    }

    @Test func failingFillAbandonsTheTensor() throws {
        struct Stop: Error {}
        try withStore { store in
            #expect(throws: Stop.self) { try store.makeTensor(.random(), shape: [10], of: Float.self) { _ in throw Stop() } }
            let remaining = try store.statistics().objectCount
            #expect(remaining == 0)
        }
    }

    @Test func wrongTypeIsATypedErrorNamingBothTypes() throws {
        try withStore { store in
            let id = ObjectID.random()
            try store.put(Tensor<Float>([1, 2]), id: id)
            let error = expectStoreError(.typeMismatch) { try store.get(id, as: Tensor<Double>.self) }
            #expect(error?.storedType == "tensor<float32>")
            #expect(error?.requestedType == "tensor<float64>")
            #expect(error?.objectID == id)
            #expect(error?.message.contains(id.description) == true)
            expectStoreError(.typeMismatch) { try store.get(id, as: String.self) }
            expectStoreError(.typeMismatch) { try store.get(id, as: TrainingConfig.self) }
        }
    }

    @Test func malformedTensorBytesAreTypedErrors() throws {
        try withStore { store in
            // Tagged as a tensor, but the bytes are not one.
            let garbage = ObjectID.random()
            var builder = try store.create(garbage, byteCount: 100, typeTag: Tensor<Float>.typeTag)
            try builder.write(patternBytes(100))
            try builder.seal()
            expectStoreError(.malformedValue) { try store.get(garbage, as: Tensor<Float>.self) }
            // A real header whose shape claims more scalars than the object holds.
            let truncated = ObjectID.random()
            let good = try store.put(Tensor<Float>([1, 2, 3, 4]), id: ObjectID.random())
            var bytes = good.copyBytes()
            bytes.removeLast(4)
            var shortBuilder = try store.create(truncated, byteCount: bytes.count, typeTag: Tensor<Float>.typeTag)
            try shortBuilder.write(bytes)
            try shortBuilder.seal()
            let error = expectStoreError(.malformedValue) { try store.get(truncated, as: Tensor<Float>.self) }
            #expect(error?.message.contains("needs") == true)
        }
    }

    @Test func bytesStringsAndCodableValuesRoundTrip() throws {
        try withStore { store in
            let bytesID = ObjectID.random(), textID = ObjectID.random(), configID = ObjectID.random()
            try store.put(patternBytes(300), id: bytesID)
            try store.put("héllo, wörld ✓", id: textID)
            let config = TrainingConfig(learningRate: 0.01, epochs: 3, name: "linear")
            try store.put(config, id: configID)
            #expect(try store.get(bytesID, as: [UInt8].self) == patternBytes(300))
            #expect(try store.get(textID, as: String.self) == "héllo, wörld ✓")
            #expect(try store.get(configID, as: TrainingConfig.self) == config)
            #expect(TrainingConfig.typeTag == "json:ObjectStoreTests.TrainingConfig")
            // The Codable encoding is JSON, readable by anyone.
            let json = try store.get(configID).copyBytes()
            #expect(String(decoding: json, as: UTF8.self) == #"{"epochs":3,"learningRate":0.01,"name":"linear"}"#)
        }
    }

    @Test func scalarsRoundTripAsFixedWidthBytes() throws {
        try withStore { store in
            try store.put(-42, id: ObjectID(deriving: "i"))
            try store.put(2.5, id: ObjectID(deriving: "d"))
            try store.put(Float(1.25), id: ObjectID(deriving: "f"))
            try store.put(true, id: ObjectID(deriving: "b"))
            #expect(try store.get(ObjectID(deriving: "i"), as: Int.self) == -42)
            #expect(try store.get(ObjectID(deriving: "i")).byteCount == 8)
            #expect(try store.get(ObjectID(deriving: "d"), as: Double.self) == 2.5)
            #expect(try store.get(ObjectID(deriving: "f"), as: Float.self) == 1.25)
            #expect(try store.get(ObjectID(deriving: "b"), as: Bool.self))
            expectStoreError(.typeMismatch) { try store.get(ObjectID(deriving: "i"), as: Double.self) }
            var bad = try store.create(ObjectID(deriving: "bad"), byteCount: 3, typeTag: Int.typeTag)
            try bad.seal()
            expectStoreError(.malformedValue) { try store.get(ObjectID(deriving: "bad"), as: Int.self) }
        }
    }

    @Test func emptyValuesAreStoredThroughPut() throws {
        try withStore { store in
            try store.put("", id: ObjectID(deriving: "empty-string"))
            try store.put([UInt8](), id: ObjectID(deriving: "empty-bytes"))
            #expect(try store.get(ObjectID(deriving: "empty-string"), as: String.self) == "")
            #expect(try store.get(ObjectID(deriving: "empty-bytes")).byteCount == 0)
            expectStoreError(.invalidSize) { try store.create(.random(), byteCount: 0) }  // raw creates still refuse 0
        }
    }

    @Test func invalidUTF8AndBadJSONAreTypedErrors() throws {
        try withStore { store in
            let text = ObjectID.random()
            var builder = try store.create(text, byteCount: 2, typeTag: String.typeTag)
            try builder.write([0xff, 0xfe])
            try builder.seal()
            expectStoreError(.malformedValue) { try store.get(text, as: String.self) }
            let json = ObjectID.random()
            var jsonBuilder = try store.create(json, byteCount: 5, typeTag: TrainingConfig.typeTag)
            try jsonBuilder.write(Array("{bad}".utf8))
            try jsonBuilder.seal()
            expectStoreError(.malformedValue) { try store.get(json, as: TrainingConfig.self) }
        }
    }

    @Test func longCodableTypeNamesGetAShortStableTag() {
        struct AVeryLongTypeNameThatGoesOnAndOnForQuiteSomeTimeIndeed: Codable, Sendable, StoreValue {}
        let tag = AVeryLongTypeNameThatGoesOnAndOnForQuiteSomeTimeIndeed.typeTag
        #expect(tag.utf8.count <= 63)
        #expect(tag == AVeryLongTypeNameThatGoesOnAndOnForQuiteSomeTimeIndeed.typeTag)
        #expect(tag.hasPrefix("json:"))
    }
}
