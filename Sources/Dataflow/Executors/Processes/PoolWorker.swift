import Foundation
import Materialize
import ObjectStore

/// What the parent sends a pool worker for one attempt, on the worker's fd 3.
struct _PoolRequest: Codable, Sendable {
    /// The task, its attempt, its inputs as object descriptors, the store and run directory.
    var spec: WorkerSpec
    /// The run's spill root (`<workdir>/spill`): the worker restores spilled inputs from there
    /// and makes room the same way the parent does.
    var spillRoot: String
    /// Fault in the store's whole mapping when attaching to it.
    var prefaultStore: Bool
}

/// The worker side of a `ProcessExecutor`: reads requests from fd 3, runs each task with its
/// standard output and error going to the attempt's log file, and writes a `WorkerResult` to
/// fd 4 (messages as in `WireFormat.swift`). Stores stay attached between tasks (that is what makes the worker warm).
///
/// - Note: Not thread-safe; it is the worker process's main loop, one task at a time.
final class _PoolWorker {
    /// The workflow a request's task belongs to (built on first use by the program's factory).
    private let resolve: (WorkerSpec) -> Workflow?
    private var stores: [String: (store: SharedObjectStore, spill: SpillManager?)] = [:]
    private let requestFD: Int32 = 3
    private let replyFD: Int32 = 4

    init(resolve: @escaping (WorkerSpec) -> Workflow?) {
        self.resolve = resolve
    }

    /// Serves until the request pipe closes (the executor shut down or its process ended).
    func serve() async {
        // The worker's channels and saved streams are not inherited by processes a task starts:
        // a grandchild holding the reply pipe would hide this worker's death from the parent.
        _Sys.setCloseOnExec(requestFD)
        _Sys.setCloseOnExec(replyFD)
        let savedOutput = _Sys.duplicateCloseOnExec(STDOUT_FILENO)
        let savedError = _Sys.duplicateCloseOnExec(STDERR_FILENO)
        guard _PoolHello.wireMessage.withUnsafeBytes({ _Sys.writeAll(replyFD, $0) }) else { return }  // the parent is gone
        var framer = _WireFramer()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let message: [UInt8]
            do {
                guard let next = try framer.next() else {
                    let count = (try? chunk.withUnsafeMutableBytes { _Sys.read(requestFD, into: $0) }.get()) ?? 0
                    guard count > 0 else { return }  // the executor closed the channel, or is gone
                    framer.append(chunk[0..<count])
                    continue
                }
                message = next
            } catch {
                return  // not a request stream: stop serving
            }
            let result: WorkerResult
            do {
                if let detach = try _PoolDetachRequest(wire: message) {
                    // Dropping the store and its spill manager unmaps the segment.
                    stores[detach.storeName] = nil
                    result = WorkerResult(outcome: .succeeded, output: nil, message: nil, bytesIn: 0)
                } else if let request = try _PoolAttachRequest(wire: message) {
                    result = attach(request.storeName, spillRoot: request.spillRoot, prefault: request.prefault) != nil
                        ? WorkerResult(outcome: .succeeded, output: nil, message: nil, bytesIn: 0)
                        : WorkerResult(outcome: .error, output: nil, message: "worker \(_Sys.processID()) cannot attach store '\(request.storeName)'", bytesIn: 0)
                } else {
                    result = await run(try _PoolRequest(wire: message), savedOutput: savedOutput, savedError: savedError)
                }
            } catch {
                result = WorkerResult(outcome: .error, output: nil, message: "worker \(_Sys.processID()) could not read its request: \(error)", bytesIn: 0)
            }
            guard result.wireMessage().withUnsafeBytes({ _Sys.writeAll(replyFD, $0) }) else { return }  // the parent is gone
        }
    }

    private func run(_ request: _PoolRequest, savedOutput: Int32, savedError: Int32) async -> WorkerResult {
        let spec = request.spec
        guard let workflow = resolve(spec), workflow.index(of: spec.taskName) != nil else {
            return WorkerResult(
                outcome: .error, output: nil,
                message: "worker program '\(CommandLine.arguments[0])' has no task '\(spec.taskName)' in workflow '\(spec.workflow ?? "?")'", bytesIn: 0)
        }
        let attached = attach(spec.storeName, spillRoot: request.spillRoot, prefault: request.prefaultStore)
        // The attempt's standard output and error go to its log file (removed again if empty).
        let runDirectory = RunDirectory(path: spec.runDirectory)
        let logsDirectory = runDirectory.logsDirectory
        let logPath = runDirectory.attemptLogPath(task: spec.taskName, attempt: spec.attempt)
        var logFD = try? _Sys.openForAppending(logPath).get()
        if logFD == nil {
            try? FileManager.default.createDirectory(atPath: logsDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            logFD = try? _Sys.openForAppending(logPath).get()
        }
        if let logFD {
            _Sys.redirect(logFD, to: STDOUT_FILENO)
            _Sys.redirect(logFD, to: STDERR_FILENO)
        }
        let result = await workflow.executeWorker(spec, attached: attached)
        _Sys.flushStandardStreams()  // every C stream (Swift's print goes through stdout's buffer)
        _Sys.redirect(savedOutput, to: STDOUT_FILENO)
        _Sys.redirect(savedError, to: STDERR_FILENO)
        if let logFD {
            if _Sys.fileSize(logFD) == 0 { _Sys.unlink(logPath) }
            _Sys.close(logFD)
        }
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
