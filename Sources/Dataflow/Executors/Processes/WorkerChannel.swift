/// The shared-memory half of the channel between a `ProcessExecutor` and one pool worker: a
/// small anonymous file in memory (memfd) that both map, holding one request slot, one reply
/// slot, and the words that say what is in them.
///
/// A request goes like this: the parent copies the message into the request slot and stores the
/// request's sequence number; the worker, which spins on that word for a while after each reply,
/// sees it, runs the request, copies its reply into the reply slot and stores the same number
/// in the reply word; the parent, spinning on that word meanwhile, takes the reply. No system
/// call and no thread wake-up on that path. A side that stops spinning says so in its
/// "sleeping" word first and then blocks on its stream (the worker in `read` of its request
/// socket, the parent's reader thread in `read` of the reply pipe); the other side, after
/// storing a sequence number, rings it with an empty message on that stream when the word says
/// it sleeps. Both check the other's word after storing their own (sequentially consistent), so
/// a ring is never missed. The streams also carry what does not fit a slot, and their end of
/// file still tells either side at once that the other is gone.
///
/// Layout (`Word` indexes 32-bit words from the start; the slots start at 4 KiB):
/// - `requestSequence`, `replySequence`: the number of the last request posted / answered;
/// - `workerSleeping`, `parentSleeping`: 1 while that side blocks on its stream;
/// - `requestLength`, `replyLength`: the slot's message length, or `onTheStream`;
/// - `captureCopied` (64 bits at word 8): how many bytes of the worker's output capture of the
///   running task are already in the attempt's log file (`_OutputCapture`);
/// - `requestPostedAt`, `replyWorkNanoseconds` (64 bits at words 10 and 12): when the parent
///   posted the request, and how long the worker took over it, from which each side judges
///   whether polling for the other is worth it (see `_PacedSpin`).
///
/// Ownership: each side owns its mapping (unmapped in `deinit`) and the parent owns the
/// descriptor it made (the worker gets a copy as fd 6). Thread-safety: the words are atomic;
/// the slots are written by one side and read by the other only between the sequence stores
/// that hand them over, and on the parent's side only under `_WorkerProcess`'s lock.
final class _WorkerChannel: @unchecked Sendable {  // shared memory, handed over by the sequence words
    static let requestCapacity = 60 * 1024
    static let replyCapacity = 64 * 1024
    private static let requestOffset = 4096
    private static let replyOffset = requestOffset + requestCapacity
    static let byteCount = replyOffset + replyCapacity
    /// A slot length that says the message went over the stream (it did not fit).
    static let onTheStream = UInt32.max
    /// The worker's descriptor for the channel.
    static let workerDescriptor: Int32 = 6

    private enum Word: Int {
        case requestSequence = 0, workerSleeping, replySequence, parentSleeping, requestLength, replyLength
        case captureCopied = 8  // 64 bits: words 8 and 9
        case requestPostedAt = 10  // 64 bits: words 10 and 11
        case replyWorkNanoseconds = 12  // 64 bits: words 12 and 13
    }

    /// The memfd (the parent's; the worker's is fd 6).
    let descriptor: Int32
    private let base: UnsafeMutableRawPointer
    private let ownsDescriptor: Bool

    private init(descriptor: Int32, base: UnsafeMutableRawPointer, ownsDescriptor: Bool) {
        self.descriptor = descriptor
        self.base = base
        self.ownsDescriptor = ownsDescriptor
    }

    deinit {
        _Sys.unmap(base, bytes: Self.byteCount)
        if ownsDescriptor { _Sys.close(descriptor) }
    }

    /// A new channel (the parent's side), zeroed.
    static func create() -> Result<_WorkerChannel, _Errno> {
        let fd: Int32
        switch _Sys.makeMemoryFile(name: "dataflow-worker-channel", bytes: byteCount) {
        case .success(let made): fd = made
        case .failure(let error): return .failure(error)
        }
        switch _Sys.mapShared(fd, bytes: byteCount) {
        case .success(let base): return .success(_WorkerChannel(descriptor: fd, base: base, ownsDescriptor: true))
        case .failure(let error):
            _Sys.close(fd)
            return .failure(error)
        }
    }

    /// The worker's side: maps fd 6, if the parent gave one of the right size.
    static func mapWorkerSide() -> _WorkerChannel? {
        guard _Sys.fileSize(workerDescriptor) == byteCount, case .success(let base) = _Sys.mapShared(workerDescriptor, bytes: byteCount) else {
            return nil
        }
        _Sys.setCloseOnExec(workerDescriptor)
        return _WorkerChannel(descriptor: workerDescriptor, base: base, ownsDescriptor: true)
    }

    private func word(_ word: Word) -> UnsafeMutablePointer<UInt32> {
        (base + word.rawValue * 4).assumingMemoryBound(to: UInt32.self)
    }

    // MARK: The parent's side

    private func word64(_ word: Word) -> UnsafeMutablePointer<UInt64> {
        (base + word.rawValue * 4).assumingMemoryBound(to: UInt64.self)
    }

    /// Posts request number `sequence`: into the slot if it fits (true), else marks it as sent
    /// on the stream (false: the caller sends `message` there). `message` is a framed wire
    /// message (length prefix first); the slot holds it without the prefix. `postedAt`: when
    /// (`DispatchTime` nanoseconds, the same clock in every process), for the worker's pacing.
    func postRequest(_ message: [UInt8], sequence: UInt32, postedAt: UInt64) -> Bool {
        _Sys.storeWord(word64(.requestPostedAt), postedAt)
        let body = message.count - 4
        let fits = body <= Self.requestCapacity
        if fits {
            message.withUnsafeBytes { (base + Self.requestOffset).copyMemory(from: $0.baseAddress! + 4, byteCount: body) }
        }
        _Sys.storeWord(word(.requestLength), fits ? UInt32(body) : Self.onTheStream)
        _Sys.storeWord(word(.parentSleeping), 0)
        _Sys.storeWord(word(.requestSequence), sequence)
        return fits
    }

    var workerIsSleeping: Bool { _Sys.loadWord(word(.workerSleeping)) != 0 }

    /// Whether the reply to request `sequence` has been posted.
    func hasReply(to sequence: UInt32) -> Bool { _Sys.loadWord(word(.replySequence)) == sequence }

    /// The posted reply (call after `hasReply(to:)`): its message (without the length prefix),
    /// or nil if it went over the stream.
    func takeReply() -> [UInt8]? {
        let length = _Sys.loadWord(word(.replyLength))
        guard length != Self.onTheStream, Int(length) <= Self.replyCapacity else { return nil }
        return [UInt8](UnsafeRawBufferPointer(start: base + Self.replyOffset, count: Int(length)))
    }

    /// Says that the parent blocks (true) or spins (false) waiting for a reply.
    func setParentSleeping(_ sleeping: Bool) { _Sys.storeWord(word(.parentSleeping), sleeping ? 1 : 0) }

    // MARK: The worker's side

    /// The number of the last request posted.
    var requestSequence: UInt32 { _Sys.loadWord(word(.requestSequence)) }

    /// The posted request's message (without the length prefix), or nil if it went over the stream.
    func takeRequest() -> [UInt8]? {
        let length = _Sys.loadWord(word(.requestLength))
        guard length != Self.onTheStream, Int(length) <= Self.requestCapacity else { return nil }
        return [UInt8](UnsafeRawBufferPointer(start: base + Self.requestOffset, count: Int(length)))
    }

    /// When the posted request was posted (`DispatchTime` nanoseconds).
    var requestPostedAt: UInt64 { _Sys.loadWord(word64(.requestPostedAt)) }

    /// How long the worker took over the last request it answered (nanoseconds), for the
    /// parent's pacing.
    var replyWorkNanoseconds: UInt64 { _Sys.loadWord(word64(.replyWorkNanoseconds)) }

    /// Posts the reply to request `sequence`: into the slot if it fits (true), else marks it as
    /// sent on the stream (false: the caller must have sent it there first). `work`: how long
    /// the worker took over it (nanoseconds).
    func postReply(_ message: [UInt8], sequence: UInt32, work: UInt64) -> Bool {
        _Sys.storeWord(word64(.replyWorkNanoseconds), work)
        let body = message.count - 4
        let fits = body <= Self.replyCapacity
        if fits {
            message.withUnsafeBytes { (base + Self.replyOffset).copyMemory(from: $0.baseAddress! + 4, byteCount: body) }
        }
        _Sys.storeWord(word(.replyLength), fits ? UInt32(body) : Self.onTheStream)
        _Sys.storeWord(word(.replySequence), sequence)
        return fits
    }

    /// Whether a reply does not fit its slot (then it goes over the stream, before `postReply`).
    static func replyFits(_ message: [UInt8]) -> Bool { message.count - 4 <= replyCapacity }

    var parentIsSleeping: Bool { _Sys.loadWord(word(.parentSleeping)) != 0 }

    /// Says that the worker blocks (true) or spins (false) waiting for a request.
    func setWorkerSleeping(_ sleeping: Bool) { _Sys.storeWord(word(.workerSleeping), sleeping ? 1 : 0) }

    // MARK: The output capture's progress (both sides)

    /// Bytes of the running task's output capture already appended to its log file.
    var captureCopied: Int {
        get { Int(_Sys.loadWord(word64(.captureCopied))) }
        set { _Sys.storeWord(word64(.captureCopied), UInt64(newValue)) }
    }
}

/// The empty stream message that rings the other side of a `_WorkerChannel` (its length prefix
/// alone): "look at the shared words".
let _channelRing: [UInt8] = [0, 0, 0, 0]
