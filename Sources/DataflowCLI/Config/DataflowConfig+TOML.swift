import Dataflow
import Foundation
import Materialize
import ObjectStore
import TOMLKit

// Reading `dataflow.toml` with TOMLKit (toml++ underneath: a complete TOML 1.0 parser whose
// syntax errors carry a line and column). Every table is checked in full: unknown keys, wrong
// types, bad durations and sizes are errors naming the file, the key and its line.

extension DataflowConfig {
    /// Parses configuration `text` (from the file `path`, for messages).
    /// - Throws: `ConfigError` naming the file, the key and (where known) the line.
    public static func parse(_ text: String, path: String, registry: ExecutorRegistry = .shared) throws(ConfigError) -> DataflowConfig {
        let root: TOMLTable
        do { root = try TOMLTable(string: text) } catch let error as TOMLParseError {
            throw ConfigError(
                file: path, key: nil, line: error.source.begin.line, column: error.source.begin.column,
                message: "not valid TOML: \(error.description)")
        } catch {
            throw ConfigError(file: path, key: nil, line: nil, message: "not valid TOML: \(error)")
        }
        var reader = _ConfigReader(path: path, text: text)
        var config = DataflowConfig()
        config.path = path
        try reader.checkKeys(root, allowed: ["run", "executor", "task", "label"], at: [])
        if let run = try reader.table(root, "run", at: []) {
            try reader.checkKeys(run, allowed: ["workdir", "policy", "concurrency", "keep_going", "executor", "store_capacity", "max_objects", "memory_wait"], at: ["run"])
            config.run.workdir = try reader.string(run, "workdir", at: ["run"])
            config.run.policy = try reader.policy(run, "policy", at: ["run"])
            config.run.concurrency = try reader.int(run, "concurrency", at: ["run"], minimum: 1)
            config.run.keepGoing = try reader.bool(run, "keep_going", at: ["run"])
            config.run.executor = try reader.string(run, "executor", at: ["run"])
            config.run.storeCapacityBytes = try reader.size(run, "store_capacity", at: ["run"])
            config.run.maxObjects = try reader.int(run, "max_objects", at: ["run"], minimum: 1)
            if let maxObjects = config.run.maxObjects, maxObjects > StoreOptions.maximumMaxObjects {
                throw reader.error(["run", "max_objects"], "\(maxObjects) is above the most a store holds, \(StoreOptions.maximumMaxObjects)")
            }
            config.run.memoryWaitSeconds = try reader.duration(run, "memory_wait", at: ["run"])
        }
        if let executors = try reader.table(root, "executor", at: []) {
            for name in executors.keys.sorted() {
                guard let table = try reader.table(executors, name, at: ["executor"]) else { continue }
                config.executors[name] = try reader.executor(named: name, table, registry: registry)
            }
        }
        for (section, keyPath) in [("task", \DataflowConfig.tasks), ("label", \DataflowConfig.labels)] {
            guard let tables = try reader.table(root, section, at: []) else { continue }
            for name in tables.keys.sorted() {
                guard let table = try reader.table(tables, name, at: [section]) else { continue }
                try reader.checkKeys(table, allowed: ["executor", "resources", "settings"], at: [section, name])
                var settings = TaskSettings(
                    executor: try reader.string(table, "executor", at: [section, name]),
                    resources: try reader.resources(table, "resources", at: [section, name]))
                settings.executorSettings = try reader.stringTable(table, "settings", at: [section, name])
                if settings.executor != nil, let line = reader.line(of: [section, name, "executor"]) {
                    config.keyLines["\(section).\(name).executor"] = line
                }
                config[keyPath: keyPath][name] = settings
            }
        }
        if let name = config.run.executor, config.executors[name] == nil, !ExecutorRegistry.builtInKinds.contains(name) {
            throw reader.error(["run", "executor"], "no executor named \(_quote(name)) is declared (declare [executor.\(name)] or use local or processes)")
        }
        return config
    }
}

/// Reads typed values out of TOMLKit tables, naming the file, key and line on every error.
struct _ConfigReader {
    let path: String
    let lines: [Substring]

    init(path: String, text: String) {
        self.path = path
        self.lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    }

    func error(_ key: [String], _ message: String) -> ConfigError {
        ConfigError(file: path, key: key.joined(separator: "."), line: line(of: key), message: message)
    }

    /// The line of `key` (1-based), found by its table's header and its own name: TOMLKit does
    /// not give values' positions, and this finds the usual layouts (nil when it cannot).
    func line(of key: [String]) -> Int? {
        guard let last = key.last else { return nil }
        let parents = key.dropLast()
        var inTable = parents.isEmpty
        for (index, raw) in lines.enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") {
                let header = line.trimmingCharacters(in: CharacterSet(charactersIn: "[] ")).replacingOccurrences(of: "\"", with: "")
                inTable = header == parents.joined(separator: ".")
                if inTable && parents.count > 0 && last.isEmpty { return index + 1 }
                if header == key.joined(separator: ".") { return index + 1 }
                continue
            }
            if inTable, line.hasPrefix(last) || line.hasPrefix("\"\(last)\"") {
                let rest = line.dropFirst(line.hasPrefix("\"") ? last.count + 2 : last.count).trimmingCharacters(in: .whitespaces)
                if rest.hasPrefix("=") { return index + 1 }
            }
        }
        return nil
    }

    func checkKeys(_ table: TOMLTable, allowed: Set<String>, at path: [String]) throws(ConfigError) {
        for key in table.keys where !allowed.contains(key) {
            throw error(path + [key], "unknown key (allowed\(path.isEmpty ? " tables" : ""): \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    private func typeName(_ value: TOMLValueConvertible) -> String { value.type.description }

    func table(_ table: TOMLTable, _ key: String, at path: [String]) throws(ConfigError) -> TOMLTable? {
        guard let value = table[key] else { return nil }
        guard let nested = value.table else { throw error(path + [key], "expected a table, found a \(typeName(value))") }
        return nested
    }

    func string(_ table: TOMLTable, _ key: String, at path: [String]) throws(ConfigError) -> String? {
        guard let value = table[key] else { return nil }
        guard let text = value.string else { throw error(path + [key], "expected a string, found a \(typeName(value))") }
        return text
    }

    func bool(_ table: TOMLTable, _ key: String, at path: [String]) throws(ConfigError) -> Bool? {
        guard let value = table[key] else { return nil }
        guard let flag = value.bool else { throw error(path + [key], "expected true or false, found a \(typeName(value))") }
        return flag
    }

    func int(_ table: TOMLTable, _ key: String, at path: [String], minimum: Int) throws(ConfigError) -> Int? {
        guard let value = table[key] else { return nil }
        guard value.type == .int, let number = value.int else { throw error(path + [key], "expected a whole number, found a \(typeName(value))") }
        guard number >= minimum else { throw error(path + [key], "\(number) is below the least value, \(minimum)") }
        return number
    }

    func number(_ table: TOMLTable, _ key: String, at path: [String]) throws(ConfigError) -> Double? {
        guard let value = table[key] else { return nil }
        if value.type == .int, let number = value.int { return Double(number) }
        guard value.type == .double, let number = value.double else { throw error(path + [key], "expected a number, found a \(typeName(value))") }
        return number
    }

    func strings(_ table: TOMLTable, _ key: String, at path: [String]) throws(ConfigError) -> [String]? {
        guard let value = table[key] else { return nil }
        guard let array = value.array else { throw error(path + [key], "expected an array of strings, found a \(typeName(value))") }
        var result: [String] = []
        for element in array {
            guard let text = element.string else { throw error(path + [key], "expected an array of strings, found a \(typeName(element)) in it") }
            result.append(text)
        }
        return result
    }

    func policy(_ table: TOMLTable, _ key: String, at path: [String]) throws(ConfigError) -> MaterializationPolicy? {
        guard let text = try string(table, key, at: path) else { return nil }
        guard let policy = MaterializationPolicy(rawValue: text) else {
            throw error(path + [key], "\(_quote(text)) is no policy (always, auto, never, final)")
        }
        return policy
    }

    /// A size: a whole number of bytes, or a string such as "1GiB".
    func size(_ table: TOMLTable, _ key: String, at path: [String]) throws(ConfigError) -> Int? {
        guard let value = table[key] else { return nil }
        if value.type == .int, let number = value.int {
            guard number >= 1 else { throw error(path + [key], "a size must be at least 1 byte") }
            return number
        }
        guard let text = value.string else { throw error(path + [key], "expected a size (e.g. \"8GiB\" or a number of bytes), found a \(typeName(value))") }
        do { return try ByteSize(parsing: text).bytes } catch {
            throw self.error(path + [key], "invalid size \(_quote(text)): \(error.reason)")
        }
    }

    /// A duration: seconds as a number, or a string such as "250ms", "30s", "5m", "2h", "1d".
    func duration(_ table: TOMLTable, _ key: String, at path: [String]) throws(ConfigError) -> Double? {
        guard let value = table[key] else { return nil }
        if let seconds = try? number(table, key, at: path) {
            guard seconds >= 0 else { throw error(path + [key], "a duration cannot be negative") }
            return seconds
        }
        guard let text = value.string else { throw error(path + [key], "expected a duration (e.g. \"30s\"), found a \(typeName(value))") }
        guard let seconds = Self.parseDuration(text) else {
            throw error(path + [key], "invalid duration \(_quote(text)) (use a number with ms, s, m, h or d, e.g. \"30s\")")
        }
        return seconds
    }

    static func parseDuration(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        for (suffix, factor) in [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0), ("d", 86400.0)] where trimmed.hasSuffix(suffix) {
            guard let number = Double(trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), number >= 0, number.isFinite else { return nil }
            return number * factor
        }
        return nil
    }

    /// `{ cpu = 4, memory = "8GiB", gpu = 1, custom = { license = 1 } }`.
    func resources(_ table: TOMLTable, _ key: String, at path: [String]) throws(ConfigError) -> Resources? {
        guard let nested = try self.table(table, key, at: path) else { return nil }
        let here = path + [key]
        try checkKeys(nested, allowed: ["cpu", "memory", "gpu", "custom"], at: here)
        var resources = Resources()
        if let cpu = try number(nested, "cpu", at: here) {
            guard cpu >= 0 else { throw error(here + ["cpu"], "cannot be negative") }
            resources.cpu = cpu
        }
        if let memory = try size(nested, "memory", at: here) { resources.memoryBytes = memory }
        if let gpu = try number(nested, "gpu", at: here) {
            guard gpu >= 0 else { throw error(here + ["gpu"], "cannot be negative") }
            resources.gpu = gpu
        }
        if let custom = try self.table(nested, "custom", at: here) {
            for name in custom.keys {
                guard let amount = try number(custom, name, at: here + ["custom"]), amount >= 0 else {
                    throw error(here + ["custom", name], "expected an amount of zero or more")
                }
                resources.custom[name] = amount
            }
        }
        return resources
    }

    /// The keys of a `type = "slurm"` table.
    static let slurmKeys: Set<String> = [
        "type", "partition", "account", "qos", "time", "sbatch_args", "poll_interval", "poll_interval_min", "poll_interval_max",
        "command_timeout", "values", "status", "arrays", "array_throttle", "max_jobs", "record_grace", "warning_signal", "executable",
        "arguments", "environment",
    ]

    /// `{ key = "value", ... }`: a table of strings (numbers and booleans are written as text).
    func stringTable(_ table: TOMLTable, _ key: String, at path: [String]) throws(ConfigError) -> [String: String]? {
        guard let nested = try self.table(table, key, at: path) else { return nil }
        var values: [String: String] = [:]
        for name in nested.keys {
            let value = nested[name]!
            if let text = value.string { values[name] = text } else if let number = value.int { values[name] = String(number) } else if let flag = value.bool {
                values[name] = String(flag)
            } else if let number = value.double { values[name] = String(number) } else {
                throw error(path + [key, name], "expected a string, found a \(typeName(value))")
            }
        }
        return values
    }

    /// A SLURM time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS.
    static func isSlurmTime(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count <= 2, parts.allSatisfy({ !$0.isEmpty }) else { return false }
        let clock = parts.last!.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 1 || Int(parts[0]) != nil else { return false }
        let allowed = parts.count == 2 ? 1...3 : 1...3
        return allowed.contains(clock.count) && clock.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
    }

    func executor(named name: String, _ table: TOMLTable, registry: ExecutorRegistry) throws(ConfigError) -> DataflowConfig.ExecutorDeclaration {
        let here = ["executor", name]
        guard let type = try string(table, "type", at: here) else {
            throw error(here, "an executor table needs a type (\(registry.knownTypes.joined(separator: ", ")))")
        }
        guard registry.isKnown(type) else {
            throw error(here + ["type"], "unknown executor type \(_quote(type)) (known: \(registry.knownTypes.joined(separator: ", ")))")
        }
        let settings: DataflowConfig.ExecutorSettings
        switch type {
        case "local":
            try checkKeys(table, allowed: ["type"], at: here)
            settings = .local
        case "processes":
            try checkKeys(table, allowed: ["type", "workers", "executable", "arguments", "prefault_store"], at: here)
            settings = .processes(.init(
                workers: try int(table, "workers", at: here, minimum: 1), executable: try string(table, "executable", at: here),
                arguments: try strings(table, "arguments", at: here) ?? [], prefaultStore: try bool(table, "prefault_store", at: here)))
        case "slurm":
            try checkKeys(table, allowed: Self.slurmKeys, at: here)
            let time = try string(table, "time", at: here)
            if let time, !Self.isSlurmTime(time) {
                throw error(here + ["time"], "invalid SLURM time \(_quote(time)) (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)")
            }
            var minimum = try duration(table, "poll_interval_min", at: here)
            if minimum == nil { minimum = try duration(table, "poll_interval", at: here) }
            let maximum = try duration(table, "poll_interval_max", at: here)
            if let minimum, let maximum, minimum > maximum {
                throw error(here + ["poll_interval_max"], "poll_interval_max (\(maximum) s) is below poll_interval_min (\(minimum) s)")
            }
            let values = try string(table, "values", at: here)
            if let values, !["store", "files", "auto"].contains(values) {
                throw error(here + ["values"], "expected \"store\", \"files\" or \"auto\", not \(_quote(values))")
            }
            let status = try string(table, "status", at: here)
            if let status, !["auto", "sacct", "squeue"].contains(status) {
                throw error(here + ["status"], "expected \"auto\", \"sacct\" or \"squeue\", not \(_quote(status))")
            }
            var slurm = DataflowConfig.SlurmSettings(
                partition: try string(table, "partition", at: here), account: try string(table, "account", at: here),
                qos: try string(table, "qos", at: here), time: time, sbatchArguments: try strings(table, "sbatch_args", at: here) ?? [],
                pollIntervalSeconds: minimum)
            slurm.pollIntervalMaxSeconds = maximum
            slurm.commandTimeoutSeconds = try duration(table, "command_timeout", at: here)
            slurm.values = values
            slurm.status = status
            slurm.arrays = try bool(table, "arrays", at: here)
            slurm.arrayThrottle = try int(table, "array_throttle", at: here, minimum: 1)
            slurm.maxJobs = try int(table, "max_jobs", at: here, minimum: 1)
            slurm.recordGraceSeconds = try duration(table, "record_grace", at: here)
            slurm.warningSignalSeconds = try duration(table, "warning_signal", at: here)
            slurm.executable = try string(table, "executable", at: here)
            slurm.arguments = try strings(table, "arguments", at: here) ?? []
            slurm.environment = try stringTable(table, "environment", at: here) ?? [:]
            settings = .slurm(slurm)
        case "ray":
            try checkKeys(
                table,
                allowed: [
                    "type", "dashboard_address", "working_dir", "poll_interval_min", "poll_interval_max", "max_submit", "autoscaler_aware", "token",
                    "token_file", "reaches_store", "executable", "arguments", "environment",
                ],
                at: here)
            let minimum = try duration(table, "poll_interval_min", at: here)
            let maximum = try duration(table, "poll_interval_max", at: here)
            if let minimum, let maximum, minimum > maximum {
                throw error(here + ["poll_interval_max"], "poll_interval_max (\(maximum) s) is below poll_interval_min (\(minimum) s)")
            }
            let address = try string(table, "dashboard_address", at: here)
            if let address, URL(string: address)?.host == nil {
                throw error(here + ["dashboard_address"], "\(_quote(address)) is no URL (e.g. \"http://127.0.0.1:8265\")")
            }
            var ray = DataflowConfig.RaySettings(
                dashboardAddress: address, workingDirectory: try string(table, "working_dir", at: here), pollIntervalMinSeconds: minimum,
                pollIntervalMaxSeconds: maximum, maxSubmit: try int(table, "max_submit", at: here, minimum: 1),
                autoscalerAware: try bool(table, "autoscaler_aware", at: here))
            ray.token = try string(table, "token", at: here)
            ray.tokenFile = try string(table, "token_file", at: here)
            ray.reachesStore = try bool(table, "reaches_store", at: here)
            ray.executable = try string(table, "executable", at: here)
            ray.arguments = try strings(table, "arguments", at: here) ?? []
            ray.environment = try stringTable(table, "environment", at: here) ?? [:]
            settings = .ray(ray)
        default:
            let allowed = registry.allowedKeys(ofType: type).map { $0.union(["type"]) }
            if let allowed { try checkKeys(table, allowed: allowed, at: here) }
            var values: [String: ConfigValue] = [:]
            for key in table.keys where key != "type" { values[key] = try configValue(table[key]!, at: here + [key]) }
            settings = .custom(values)
        }
        return DataflowConfig.ExecutorDeclaration(name: name, type: type, settings: settings)
    }

    func configValue(_ value: TOMLValueConvertible, at path: [String]) throws(ConfigError) -> ConfigValue {
        switch value.type {
        case .string: return .string(value.string ?? "")
        case .int: return .int(value.int ?? 0)
        case .double: return .double(value.double ?? 0)
        case .bool: return .bool(value.bool ?? false)
        case .array:
            var elements: [ConfigValue] = []
            for element in value.array ?? [] { elements.append(try configValue(element, at: path)) }
            return .array(elements)
        case .table:
            var values: [String: ConfigValue] = [:]
            if let table = value.table { for key in table.keys { values[key] = try configValue(table[key]!, at: path + [key]) } }
            return .table(values)
        default:
            throw error(path, "dates and times are not supported here")
        }
    }
}
