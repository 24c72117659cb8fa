import Foundation
import Testing

/// The `dataflow` binary keeps the README's word: 0 on success and for `--help`; 1 for every
/// error, a bad option as much as a missing store; names quoted with control characters escaped.
@Suite struct ExitStatusTests {
    static let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("dataflow").path

    /// Runs the command; returns its exit status and standard error.
    func dataflow(_ arguments: String...) throws -> (status: Int32, error: String) {
        try dataflow(arguments: arguments)
    }

    @Test(arguments: [
        (["demo", "--megabytes", "0"], "--megabytes"),
        (["runs", "list", "--bogus"], "--bogus"),
        (["bench", "--sizes", "-1MiB"], "invalid size '-1MiB'"),
        (["bench", "--stages", "-3"], "-3"),
        (["store", "stats", "../etc"], "invalid store name '../etc'"),
        (["store", "stats", "nosuch-store-\(getpid())"], "no store named"),
        (["runs", "show", "nosuch", "--workdir", NSTemporaryDirectory()], "no run 'nosuch'"),
        (["no-such-subcommand"], "no-such-subcommand"),
    ])
    func everyErrorExitsWithStatusOneAndNamesTheCulprit(arguments: [String], expected: String) throws {
        let (status, error) = try dataflow(arguments: arguments)
        #expect(status == 1, "\(arguments): status \(status), \(error)")
        #expect(error.contains(expected), "\(arguments): \(error)")
    }

    @Test func helpExitsWithZero() throws {
        #expect(try dataflow("--help").status == 0)
        #expect(try dataflow("bench", "--help").status == 0)
    }

    @Test func controlCharactersInNamesAreEscapedInMessages() throws {
        let (status, error) = try dataflow("store", "stats", "bad\u{1B}[2Jname\nnext")
        #expect(status == 1)
        #expect(!error.contains("\u{1B}") && error.contains("\\u{1B}[2Jname\\nnext"), "\(error)")
    }

    func dataflow(arguments: [String]) throws -> (status: Int32, error: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments
        let errorPipe = Pipe()
        process.standardError = errorPipe
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let data = errorPipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
