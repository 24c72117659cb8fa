import Foundation

/// The machine a benchmark ran on, for its JSON output.
struct MachineInfo: Codable, Sendable {
    var cpuCount: Int
    var cpuModel: String
    var memoryBytes: Int
    var os: String
    var kernel: String
    var swiftVersion: String
    var hostname: String
    var date: String

    enum CodingKeys: String, CodingKey {
        case cpuCount = "cpu_count", cpuModel = "cpu_model", memoryBytes = "memory_bytes", os, kernel
        case swiftVersion = "swift_version", hostname, date
    }

    static func current() -> MachineInfo {
        let info = ProcessInfo.processInfo
        var uts = utsname()
        uname(&uts)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown"
        let release = (try? String(contentsOfFile: "/etc/os-release", encoding: .utf8)) ?? ""
        let pretty = release.split(separator: "\n").first { $0.hasPrefix("PRETTY_NAME=") }
            .map { String($0.dropFirst("PRETTY_NAME=".count)).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
        return MachineInfo(
            cpuCount: info.activeProcessorCount, cpuModel: model, memoryBytes: Int(clamping: info.physicalMemory),
            os: pretty ?? "\(field(uts.sysname))", kernel: "\(field(uts.sysname)) \(field(uts.release)) \(field(uts.machine))",
            swiftVersion: compilerVersion, hostname: info.hostName, date: Format.iso(Date()))
    }

    /// The version of the compiler that built this executable.
    static var compilerVersion: String {
        #if compiler(>=6.5)
        return "6.5 or later"
        #elseif compiler(>=6.4)
        return "6.4"
        #elseif compiler(>=6.3.1)
        return "6.3.1"
        #elseif compiler(>=6.3)
        return "6.3"
        #elseif compiler(>=6.2)
        return "6.2"
        #elseif compiler(>=6.1)
        return "6.1"
        #else
        return "6.0"
        #endif
    }
}
