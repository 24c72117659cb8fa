import Foundation
import Materialize
import ObjectStore

/// What the parent sends a pool worker for one attempt (through its `_WorkerChannel`).
struct _PoolRequest: Codable, Sendable {
    /// The task, its attempt, its inputs as object descriptors, the store and run directory.
    var spec: WorkerSpec
    /// The run's spill root (`<workdir>/spill`): the worker restores spilled inputs from there
    /// and makes room the same way the parent does.
    var spillRoot: String
    /// Fault in the store's whole mapping when attaching to it.
    var prefaultStore: Bool
}

/// The worker side of a `ProcessExecutor`: takes requests from its `_WorkerChannel` (fd 6;
/// large ones and rings on fd 3), runs each task with its standard output and error going to an
/// `_OutputCapture` (fd 5) and then its log file, and posts a `WorkerResult` back (messages as in
/// `WireFormat.swift`; large replies and rings on fd 4). Stores stay attached between tasks (that
/// is what makes the worker warm).
///
/// - Note: Not thread-safe; it is the worker process's main loop, one task at a time.
final class _PoolWorker {
    /// The workflow a request's task belongs to (built on first use by the program's factory).
    private let resolve: (WorkerSpec) -> Workflow?
    private var stores: [String: (store: SharedObjectStore, spill: SpillManager?)] = [:]
    private var requests = _PoolRequestDecoder()
    private let requestFD: Int32 = 3
    private let replyFD: Int32 = 4
    init(resolve: @escaping (WorkerSpec) -> Workflow?) {
        self.resolve = resolve
    }

    /// How long the parent takes between a reply and the next request lately (from the
    /// channel's posting times): the worker polls only while that is within the spin, so that
    /// a worker that waits longer (sparse tasks, an idle pool) does not poll in vain.
    private var parentPace = _PacedSpin()

    /// Serves until the request stream closes (the executor shut down or its process ended).
    func serve() async {
        // The worker's channels and saved streams are not inherited by processes a task starts:
        // a grandchild holding the reply pipe would hide this worker's death from the parent.
        _Sys.setCloseOnExec(requestFD)
        _Sys.setCloseOnExec(replyFD)
        guard let channel = _WorkerChannel.mapWorkerSide(), let capture = _OutputCapture(channel: channel) else {
            let complaint = "dataflow pool worker \(_Sys.processID()): no channel on fds 5 and 6 (started by something other than a ProcessExecutor?)\n"
            _ = Array(complaint.utf8).withUnsafeBytes { _Sys.writeAll(STDERR_FILENO, $0) }
            return
        }
        guard _PoolHello.wireMessage.withUnsafeBytes({ _Sys.writeAll(replyFD, $0) }) else { return }  // the parent is gone
        var stream = _RequestStream(fd: requestFD)
        var answered: UInt32 = 0
        while true {
            let repliedAt = DispatchTime.now().uptimeNanoseconds
            guard let sequence = waitForRequest(after: answered, channel: channel, stream: &stream) else {
                return
            }
            let seenAt = DispatchTime.now().uptimeNanoseconds
            let postedAt = channel.requestPostedAt
            parentPace.note(postedAt > repliedAt ? postedAt - repliedAt : 0)
            answered = sequence
            let message: [UInt8]
            if let inSlot = channel.takeRequest() {
                message = inSlot
            } else {
                guard let next = stream.nextMessage() else { return }  // too large for the slot: on the stream
                message = next
            }
            let reply = await handle(message, capture: capture).wireMessage()
            if !_WorkerChannel.replyFits(reply) {
                guard reply.withUnsafeBytes({ _Sys.writeAll(replyFD, $0) }) else { return }  // the parent is gone
            }
            _ = channel.postReply(reply, sequence: sequence, work: DispatchTime.now().uptimeNanoseconds - seenAt)
            if channel.parentIsSleeping {
                guard _channelRing.withUnsafeBytes({ _Sys.writeAll(replyFD, $0) }) else { return }
            }
        }
    }

    /// The number of the next request: polls the channel for a while (see `_PacedSpin`), then
    /// blocks on the request stream until the parent rings. Nil when the stream ends.
    private func waitForRequest(after answered: UInt32, channel: _WorkerChannel, stream: inout _RequestStream) -> UInt32? {
        if let posted = parentPace.poll({ () -> UInt32? in
            let posted = channel.requestSequence
            return posted != answered ? posted : nil
        }) {
            return posted
        }
        while true {
            channel.setWorkerSleeping(true)
            let posted = channel.requestSequence
            if posted != answered {
                channel.setWorkerSleeping(false)
                return posted
            }
            let open = stream.waitForData()
            channel.setWorkerSleeping(false)
            guard open else { return nil }
        }
    }

    /// Runs one request: a task, or an attach, detach or ping.
    private func handle(_ message: [UInt8], capture: _OutputCapture) async -> WorkerResult {
        do {
            if _PoolPingRequest.matches(message) {
                return WorkerResult(outcome: .succeeded, output: nil, message: nil, bytesIn: 0)
            } else if let detach = try _PoolDetachRequest(wire: message) {
                // Dropping the store and its spill manager unmaps the segment.
                stores[detach.storeName] = nil
                return WorkerResult(outcome: .succeeded, output: nil, message: nil, bytesIn: 0)
            } else if let request = try _PoolAttachRequest(wire: message) {
                return attach(request.storeName, spillRoot: request.spillRoot, prefault: request.prefault) != nil
                    ? WorkerResult(outcome: .succeeded, output: nil, message: nil, bytesIn: 0)
                    : WorkerResult(outcome: .error, output: nil, message: "worker \(_Sys.processID()) cannot attach store '\(request.storeName)'", bytesIn: 0)
            } else {
                return await run(try requests.decode(message), capture: capture)
            }
        } catch {
            return WorkerResult(outcome: .error, output: nil, message: "worker \(_Sys.processID()) could not read its request: \(error)", bytesIn: 0)
        }
    }

    private func run(_ request: _PoolRequest, capture: _OutputCapture) async -> WorkerResult {
        let spec = request.spec
        guard let workflow = resolve(spec) else {
            return WorkerResult(
                outcome: .error, output: nil,
                message: "worker program '\(CommandLine.arguments[0])' has no task '\(spec.taskName)' in workflow '\(spec.workflow ?? "?")'", bytesIn: 0)
        }
        let attached = attach(spec.storeName, spillRoot: request.spillRoot, prefault: request.prefaultStore)
        // The attempt's standard output and error go to its log file (only if it writes any).
        capture.begin(runDirectory: spec.runDirectory, task: spec.taskName, attempt: spec.attempt)
        var result = await workflow.executeWorker(spec, attached: attached)
        let captured = capture.end()
        result.logWritten = captured || result.logWritten == true  // so the parent need not look
        return result
    }

    /// The store named `name`, attached once and kept, with a spill manager of its own.
    private func attach(_ name: String?, spillRoot: String, prefault: Bool) -> (store: SharedObjectStore, spill: SpillManager?)? {
        guard let name else { return nil }
        if let known = stores[name] { return known }
        // A run on another store: let the earlier ones go (their segments may be removed, and a
        // mapping would keep their memory).
        stores.removeAll()
        guard let store = try? SharedObjectStore.attach(named: name, options: AttachOptions(prefault: prefault)) else {
            return nil  // `executeWorker` attaches again and reports the error
        }
        let entry = (store: store, spill: try? SpillManager(store: store, rootDirectory: spillRoot))
        stores[name] = entry
        return entry
    }
}

/// The request stream of a pool worker (fd 3): rings (empty messages), which are dropped, and
/// requests too large for the channel's slot, kept in order until their turn.
///
/// - Note: Not thread-safe; the worker's serving loop owns it.
struct _RequestStream {
    let fd: Int32
    private var framer = _WireFramer()
    private var requests: [[UInt8]] = []
    private var chunk = [UInt8](repeating: 0, count: 64 * 1024)

    init(fd: Int32) { self.fd = fd }

    /// Blocks until something arrives (a ring or a request). False at the end of the stream, or
    /// when it is not a stream of messages.
    mutating func waitForData() -> Bool {
        let count = chunk.withUnsafeMutableBytes { (try? _Sys.read(fd, into: $0).get()) ?? 0 }
        guard count > 0 else { return false }
        framer.append(chunk[0..<count])
        do {
            while let message = try framer.next() { if !message.isEmpty { requests.append(message) } }
        } catch {
            return false
        }
        return true
    }

    /// The next request sent on the stream, waiting for it. Nil if the stream ends first.
    mutating func nextMessage() -> [UInt8]? {
        while requests.isEmpty {
            guard waitForData() else { return nil }
        }
        return requests.removeFirst()
    }
}
