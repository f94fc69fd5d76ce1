import ArtifactKit
import Classification
import XCTest

/// NumpyRandomState against numpy 2.x's legacy RandomState (fixture: tools/reference/make_split_fixture.py).
final class NumpyRandomStateTests: XCTestCase {
    func testRawStreamMatchesNumpyForIntegerAndArraySeeds() throws {
        let fixture = try DataPrepFixtures.json("randomstate.json")
        let raw = try XCTUnwrap(fixture["raw"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(raw.count, 8)
        for entry in raw {
            var rng: NumpyRandomState
            if let seed = entry["seed"] as? Int {
                rng = NumpyRandomState(seed: UInt32(seed))
            } else {
                rng = NumpyRandomState(seedArray: try XCTUnwrap(entry["seed_array"] as? [Int]).map { UInt32($0) })
            }
            let first = try XCTUnwrap(entry["first"] as? [Int])
            var drawn = (0..<first.count).map { _ in rng.nextUInt32() }
            XCTAssertEqual(drawn.map(Int.init), first, "seed \(entry["seed"] ?? entry["seed_array"]!)")
            if let expected = entry["sha256_first_1300_u32le"] as? String {
                // 1300 draws cross two regenerations of the 624-word state.
                drawn += (first.count..<1300).map { _ in rng.nextUInt32() }
                let bytes = drawn.withUnsafeBytes { Data($0) }
                XCTAssertEqual(FileHash.sha256(of: bytes), expected, "seed \(entry["seed"]!)")
            }
        }
    }

    func testPermutationsMatchNumpy() throws {
        let fixture = try DataPrepFixtures.json("randomstate.json")
        let perms = try XCTUnwrap(fixture["permutations"] as? [[String: Any]])
        XCTAssertEqual(perms.count, 32)
        for entry in perms {
            let seed = try XCTUnwrap(entry["seed"] as? Int), n = try XCTUnwrap(entry["n"] as? Int)
            var rng = NumpyRandomState(seed: UInt32(seed))
            XCTAssertEqual(rng.permutation(n), try XCTUnwrap(entry["permutation"] as? [Int]), "seed \(seed) n \(n)")
        }
    }

    func testBoundedIntegersMatchNumpyOn32And64BitDraws() throws {
        let fixture = try DataPrepFixtures.json("randomstate.json")
        let bounded = try XCTUnwrap(fixture["bounded"] as? [[String: Any]])
        XCTAssertTrue(bounded.contains { ($0["max"] as? Int ?? 0) > Int(UInt32.max) }, "fixture must cover the 64-bit path")
        for entry in bounded {
            let seed = try XCTUnwrap(entry["seed"] as? Int), max = try XCTUnwrap(entry["max"] as? Int)
            var rng = NumpyRandomState(seed: UInt32(seed))
            let values = try XCTUnwrap(entry["values"] as? [Int])
            XCTAssertEqual(values.map { _ in Int(rng.randomInterval(max: UInt64(max))) }, values, "seed \(seed) max \(max)")
        }
    }

    func testTheBooksTwoChoicesMatchNumpy() throws {
        let fixture = try DataPrepFixtures.json("randomstate.json")
        for key in ["choice_book_balance", "choice_book_shuffle"] {
            let entry = try XCTUnwrap(fixture[key] as? [String: Any])
            let seed = try XCTUnwrap(entry["seed"] as? Int), n = try XCTUnwrap(entry["n"] as? Int)
            let size = try XCTUnwrap(entry["size"] as? Int)
            var rng = NumpyRandomState(seed: UInt32(seed))
            XCTAssertEqual(rng.choiceWithoutReplacement(n, size: size), try XCTUnwrap(entry["choice"] as? [Int]), key)
        }
    }
}
