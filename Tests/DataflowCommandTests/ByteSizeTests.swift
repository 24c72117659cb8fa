import DataflowCLI
import Testing
@testable import DataflowCommand

/// Size strings: units, decimals, and errors that name the bad value.
@Suite struct ByteSizeTests {
    @Test func parsesBinaryAndDecimalUnits() throws {
        #expect(try ByteSize(parsing: "4096").bytes == 4096)
        #expect(try ByteSize(parsing: "64KiB").bytes == 64 << 10)
        #expect(try ByteSize(parsing: "1MiB").bytes == 1 << 20)
        #expect(try ByteSize(parsing: "512mib").bytes == 512 << 20)
        #expect(try ByteSize(parsing: "1GiB").bytes == 1 << 30)
        #expect(try ByteSize(parsing: "16M").bytes == 16 << 20)
        #expect(try ByteSize(parsing: "1.5GB").bytes == 1_500_000_000)
        #expect(try ByteSize(parsing: "2MB").bytes == 2_000_000)
        #expect(try ByteSize(parsing: "0.5KiB").bytes == 512)
        #expect(try ByteSize(parsing: " 10B ").bytes == 10)
    }

    @Test func printsTheLargestExactUnit() throws {
        #expect(ByteSize(1 << 30).description == "1GiB")
        #expect(ByteSize(512 << 20).description == "512MiB")
        #expect(ByteSize(1000).description == "1000B")
        #expect(ByteSize.human(1536 << 20) == "1.5 GiB")
    }

    @Test(arguments: ["foo", "", "12XB", "0", "-1MiB", "1.3B", "MiB", "1..2MiB"])
    func rejectsBadSizesNamingThem(_ text: String) {
        #expect {
            _ = try ByteSize(parsing: text, option: "--sizes")
        } throws: { error in
            let message = "\(error)"
            return message.contains("'\(text)'") && message.contains("--sizes")
        }
    }

    @Test func parsesListsAndNamesTheBadElement() throws {
        #expect(try ByteSize.parseList("1MiB,16MiB,1GiB", option: "--sizes").map(\.bytes) == [1 << 20, 16 << 20, 1 << 30])
        #expect {
            _ = try ByteSize.parseList("1MiB,12 parsecs,1GiB", option: "--sizes")
        } throws: { error in
            guard case CommandError.invalidSize(let value, let option, _) = error else { return false }
            return value == "12 parsecs" && option == "--sizes"
        }
    }

    @Test func percentiles() {
        #expect(Statistics.median([3, 1, 2]) == 2)
        #expect(Statistics.median([4, 1, 2, 3]) == 2.5)
        #expect(Statistics.percentile(Array(1...10).map(Double.init), 0.9) == 9)
        #expect(Statistics.percentile([5], 0.9) == 5)
        #expect(Statistics.percentile([1, 2, 3], 0.9) == 3)
    }
}
