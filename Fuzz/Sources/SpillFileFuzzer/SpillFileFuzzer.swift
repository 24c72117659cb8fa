import Materialize

/// libFuzzer's entry point: the input is a whole spill file. Reading it must end in a value
/// or a `MaterializeError`; a crash, a hang or a sanitizer report is a bug.
///
/// Each input is read twice: as it is (which mostly exercises the header checks, since a random
/// mutation rarely keeps the header checksum right), and with its payload and header checksums
/// repaired, so that mutations reach the size checks and the LZ4 frame decoder.
@_cdecl("LLVMFuzzerTestOneInput")
public func spillFileFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    read(bytes)
    if bytes.count >= 256 { read(repairingChecksums(bytes)) }
    return 0
}

private func read(_ bytes: [UInt8]) {
    if let (header, value) = try? SpillFile.read(fileBytes: bytes, path: "<fuzz input>") {
        precondition(value.count == header.rawByteCount, "decoded \(value.count) bytes, header says \(header.rawByteCount)")
    }
}

/// Recomputes the payload checksum (offset 32) and the header checksum (offset 248).
private func repairingChecksums(_ bytes: [UInt8]) -> [UInt8] {
    var repaired = bytes
    func put(_ value: UInt64, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { repaired.replaceSubrange(offset..<offset + 8, with: $0) }
    }
    put(SpillFileTesting.headerChecksum(Array(repaired[256...])), at: 32)
    put(SpillFileTesting.headerChecksum(Array(repaired[0..<248])), at: 248)
    return repaired
}
