import Dataflow
import Foundation

/// What `connect()` learned of the cluster: its nodes (in the executor's partition), whether
/// accounting answers, and its array size limit.
///
/// - Note: A value type; thread-safe.
struct SlurmCluster: Sendable {
    struct Node: Sendable, Equatable {
        var name: String
        var hostName: String
        var cpus: Int
        var memoryBytes: Int
        /// GRES by name (`gpu` → 2), counts only.
        var gres: [String: Int]
    }

    var nodes: [Node]
    /// `sacct` answers (slurmdbd accounting on).
    var accountingWorks: Bool
    /// `MaxArraySize`: array indices must stay below it.
    var maxArraySize: Int

    /// The largest node's resources (each amount the largest of any node): a task that
    /// declares more fits nowhere.
    var largestNode: Resources? {
        guard !nodes.isEmpty else { return nil }
        var custom: [String: Double] = [:]
        for node in nodes {
            for (name, count) in node.gres where name != "gpu" { custom[name] = max(custom[name] ?? 0, Double(count)) }
        }
        return Resources(
            cpu: Double(nodes.map(\.cpus).max() ?? 0), memoryBytes: nodes.map(\.memoryBytes).max() ?? 0,
            gpu: Double(nodes.map { $0.gres["gpu"] ?? 0 }.max() ?? 0), custom: custom)
    }

    /// Every node is this host (its jobs can attach to this node's store).
    func allNodesAreHost(_ hostName: String) -> Bool {
        !nodes.isEmpty && nodes.allSatisfy { $0.hostName == hostName || $0.name == hostName || $0.hostName == "localhost" }
    }

    /// Asks the cluster: `sinfo` for the nodes, `sacct` whether accounting answers, `scontrol
    /// show config` for `MaxArraySize`.
    /// - Throws: `.executor` when SLURM does not answer (naming the command and its message).
    static func probe(partition: String?, timeoutSeconds: Double) async throws(DataflowError) -> SlurmCluster {
        var arguments = ["-h", "-N", "-o", "%N|%n|%c|%m|%G"]
        if let partition { arguments += ["-p", partition] }
        let sinfo = try await SlurmCommand(tool: "sinfo", arguments: arguments, timeoutSeconds: timeoutSeconds).run()
        guard sinfo.status == 0 else {
            throw DataflowError(.executor, "slurm: 'sinfo' failed (does a cluster answer here?): \(sinfo.message)")
        }
        var nodes: [Node] = []
        var seen: Set<String> = []
        for line in sinfo.output.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 5, !seen.contains(fields[0]) else { continue }
            seen.insert(fields[0])
            nodes.append(Node(
                name: fields[0], hostName: fields[1], cpus: Int(fields[2]) ?? 0, memoryBytes: (Int(fields[3].filter(\.isNumber)) ?? 0) << 20,
                gres: parseGres(fields[4])))
        }
        if nodes.isEmpty {
            throw DataflowError(.executor, "slurm: the cluster has no nodes" + (partition.map { " in partition '\($0)'" } ?? "") + " ('sinfo' listed none)")
        }
        let sacct = try? await SlurmCommand(
            tool: "sacct", arguments: ["-X", "-n", "-P", "--format=JobIDRaw", "--name=dataflow-probe"], timeoutSeconds: timeoutSeconds
        ).run()
        let accountingWorks = sacct.map { $0.status == 0 && !($0.output + $0.error).contains("accounting storage is disabled") } ?? false
        var maxArraySize = 1001
        if let config = try? await SlurmCommand(tool: "scontrol", arguments: ["show", "config"], timeoutSeconds: timeoutSeconds).run() {
            for line in config.output.split(whereSeparator: \.isNewline) where line.hasPrefix("MaxArraySize") {
                if let value = line.split(separator: "=").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) { maxArraySize = value }
            }
        }
        return SlurmCluster(nodes: nodes, accountingWorks: accountingWorks, maxArraySize: maxArraySize)
    }

    /// `gpu:2,license:4(S:0)` or `gpu:tesla:2` → counts by name.
    static func parseGres(_ text: String) -> [String: Int] {
        var gres: [String: Int] = [:]
        guard text != "(null)" else { return gres }
        for item in text.split(separator: ",") {
            let plain = item.split(separator: "(").first.map(String.init) ?? String(item)
            let parts = plain.split(separator: ":")
            guard let name = parts.first, let count = parts.last.flatMap({ Int($0) }), parts.count >= 2 else { continue }
            gres[String(name), default: 0] += count
        }
        return gres
    }
}
