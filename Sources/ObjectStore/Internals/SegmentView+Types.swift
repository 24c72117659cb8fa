// The type table: the names of the value types stored in this segment, so that every object
// carries a 2-byte type index and a type mismatch can still be reported by name. Append-only:
// an index, once given, names the same type for the segment's whole life. Index 0 is `bytes`.
//
// Requires the segment mutex.

extension _SegmentView {
    /// The longest type name, in UTF-8 bytes.
    static let maximumTypeNameByteCount = _Layout.slotByteCount - 1

    private func typeSlot(_ index: Int) -> _Fields {
        _Fields(raw: base + _Layout.typeTableOffset + index * _Layout.slotByteCount)
    }

    var typeCount: Int { Int(header.u32(_Layout.typeCountOffset)) }

    /// The name of type `index`, or "unknown type #index" for an index never given.
    func typeName(at index: Int) -> String {
        guard index < typeCount else { return "unknown type #\(index)" }
        let slot = typeSlot(index)
        let length = Int(slot.u8(0))
        return String(decoding: UnsafeRawBufferPointer(start: slot.raw + 1, count: length), as: UTF8.self)
    }

    /// The index of type `name`, adding it when new. Nil when the table is full.
    /// The caller has checked the name's length. O(types); callers cache the answer.
    func typeIndex(named name: String) -> Int? {
        let utf8 = Array(name.utf8)
        for index in 0..<typeCount {
            let slot = typeSlot(index)
            if Int(slot.u8(0)) == utf8.count && memcmpEqual(slot.raw + 1, utf8) { return index }
        }
        let index = typeCount
        guard index < _Layout.typeSlotCount else { return nil }
        let slot = typeSlot(index)
        utf8.withUnsafeBytes { (slot.raw + 1).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        slot.setU8(0, UInt8(utf8.count))
        header.setU32(_Layout.typeCountOffset, UInt32(index + 1))
        return index
    }

    private func memcmpEqual(_ address: UnsafeMutableRawPointer, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { UnsafeRawBufferPointer(start: address, count: bytes.count).elementsEqual($0) }
    }
}
